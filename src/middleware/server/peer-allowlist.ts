import type { CallContext, ServerMiddlewareCall } from 'nice-grpc-common';
import { clip } from '../../core/clip.js';
import { AppError } from '../../core/errors.js';
import { peerOf, type Peer } from '../../tls/peer-identity.js';

// Admits only callers whose TLS client certificate has an allowed role and name. The headers are
// set by peerIdentityInterceptor from the verified certificate (a caller cannot forge them).
// Requires the interceptor to be installed on the server for these calls: createNodeServer does that.

/** `allowed` is asked on every call (so a list that can change, such as the banks discovery knows, works). */
export function peerAllowlistMiddleware(allowed: (peer: Peer) => boolean) {
  return async function* peerAllowlist<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
    const peer = peerOf(context.metadata);
    if (!allowed(peer)) {
      const who = `certificate "${clip(peer.cn ?? 'none')}" (${peer.role ? `role ${peer.role}` : 'no role'})`;
      throw new AppError('PEER_NOT_ALLOWED', `${who} may not call ${call.method.path}`);
    }
    return yield* call.next(call.request, context);
  };
}
