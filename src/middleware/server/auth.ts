import type { CallContext, ServerMiddleware, ServerMiddlewareCall } from 'nice-grpc-common';
import { AssertionError } from '../../core/assert.js';
import { AppError, fail, type Result } from '../../core/errors.js';
import type { Identity } from '../../core/transfer.js';

// Verifies `authorization: Bearer <jwt>` on every call of the service it is attached to, and hands
// the verified identity to the handler as `context.auth`. Methods listed as public skip the check.
// It never logs or echoes the token.

/** What a protected handler receives: the call context plus the verified caller. */
export type AuthContext = CallContext & { auth: Identity };

export interface TokenVerifier {
  verify(token: string): Promise<Result<Identity>>;
}

export interface RevocationList {
  /** A memory lookup; a shared list whose memory is stale asks its database (a promise). */
  isRevoked(tokenId: string): boolean | Promise<boolean>;
}

export interface AuthOptions {
  readonly tokens: TokenVerifier;
  readonly revocations: RevocationList;
  /** Method paths ("/pkg.Service/Method") callable without a token. */
  readonly publicMethods: ReadonlySet<string>;
}

const BEARER_RE = /^Bearer +(\S+)$/i;

/** The whole check, from the raw metadata value to an identity or the reason it is refused. */
export async function authenticate(
  authorization: string | undefined,
  tokens: TokenVerifier,
  revocations: RevocationList,
): Promise<Result<Identity>> {
  if (!authorization) return fail('TOKEN_MISSING', 'this call needs `authorization: Bearer <token>`; log in first');
  const token = BEARER_RE.exec(authorization.trim())?.[1];
  if (!token) return fail('TOKEN_INVALID', 'the authorization header must be `Bearer <token>`');
  const verified = await tokens.verify(token);
  if (!verified.ok) return verified;
  if (await revocations.isRevoked(verified.value.tokenId)) {
    return fail('TOKEN_REVOKED', 'the access token was revoked (logged out); log in again');
  }
  return verified;
}

export function authMiddleware(options: AuthOptions): ServerMiddleware<{ auth: Identity }> {
  return async function* auth<Req, Res>(
    call: ServerMiddlewareCall<Req, Res, { auth: Identity }>,
    context: CallContext,
  ) {
    if (options.publicMethods.has(call.method.path)) {
      return yield* call.next(call.request, publicContext(context, call.method.path));
    }
    const header = context.metadata.get('authorization');
    const result = await authenticate(
      typeof header === 'string' ? header : undefined,
      options.tokens,
      options.revocations,
    );
    if (!result.ok) throw AppError.from(result);
    return yield* call.next(call.request, { ...context, auth: result.value });
  };
}

/**
 * A public method's context: the type promises `auth` (one service shares one context type), so
 * reading it is a programmer error and fails loudly instead of yielding undefined.
 */
function publicContext(context: CallContext, path: string): AuthContext {
  return Object.create(context, {
    auth: {
      get() {
        throw new AssertionError(`${path} is public: it has no authenticated caller`);
      },
    },
  }) as AuthContext;
}
