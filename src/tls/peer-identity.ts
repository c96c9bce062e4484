import { ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';

// nice-grpc's CallContext does not expose the TLS peer certificate, so a grpc-js interceptor copies
// the verified certificate's common name into metadata. It first drops any value the caller sent
// under that name, so the header can only ever hold what TLS verified.

export const PEER_IDENTITY_HEADER = 'x-verified-peer-cn';

/**
 * The interceptor. `needsIdentity(methodPath)` says which calls carry the identity: reading the
 * peer certificate (getPeerCertificate builds a fresh object each time) is skipped for the others,
 * e.g. the gateway's client-facing calls, which authenticate by token. The header is removed from
 * every call either way, so it can never hold anything but what TLS verified.
 */
export function peerIdentityInterceptorFor(needsIdentity: (methodPath: string) => boolean): ServerInterceptor {
  return (method, call) => {
    const wanted = needsIdentity(method.path);
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            metadata.remove(PEER_IDENTITY_HEADER);
            if (wanted) {
              const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
              if (typeof cn === 'string' && cn) metadata.set(PEER_IDENTITY_HEADER, cn);
            }
            nextMetadata(metadata);
          },
        });
      },
    });
  };
}

/** Every call carries the identity. */
export const peerIdentityInterceptor: ServerInterceptor = peerIdentityInterceptorFor(() => true);
