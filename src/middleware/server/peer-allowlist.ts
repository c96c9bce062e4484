import type { CallContext, ServerMiddlewareCall } from 'nice-grpc-common';
import { AppError } from '../../core/errors.js';
import { PEER_IDENTITY_HEADER } from '../../tls/peer-identity.js';

// Admits only callers whose TLS client certificate names an allowed identity. The header is set
// by peerIdentityInterceptor from the verified certificate (a caller cannot forge it).
// Requires the interceptor to be installed on the server: createNodeServer does that.

// `allowed` is a fixed list, or a predicate asked on every call (a list that can change, such as
// the bank names discovery knows).
export function peerAllowlistMiddleware(allowed: readonly string[] | ((peer: string) => boolean)) {
  const set = typeof allowed === 'function' ? undefined : new Set(allowed);
  const isAllowed = typeof allowed === 'function' ? allowed : (peer: string) => set!.has(peer);
  return async function* peerAllowlist<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
    const peer = context.metadata.get(PEER_IDENTITY_HEADER);
    if (typeof peer !== 'string' || !isAllowed(peer)) {
      throw new AppError('PEER_NOT_ALLOWED', `certificate "${String(peer ?? 'none')}" may not call ${call.method.path}`);
    }
    return yield* call.next(call.request, context);
  };
}
