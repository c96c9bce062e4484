import { ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';

// nice-grpc's CallContext does not expose the TLS peer certificate, so a grpc-js interceptor copies
// the verified certificate's common name into metadata. It first drops any value the caller sent
// under that name, so the header can only ever hold what TLS verified.

export const PEER_IDENTITY_HEADER = 'x-verified-peer-cn';

export const peerIdentityInterceptor: ServerInterceptor = (_method, call) =>
  new ServerInterceptingCall(call, {
    start: (next) => {
      next({
        onReceiveMetadata: (metadata, nextMetadata) => {
          metadata.remove(PEER_IDENTITY_HEADER);
          const subject = call.getAuthContext().sslPeerCertificate?.subject;
          const cn = subject?.CN;
          if (typeof cn === 'string' && cn) metadata.set(PEER_IDENTITY_HEADER, cn);
          nextMetadata(metadata);
        },
      });
    },
  });
