import { ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';
import type { Metadata } from 'nice-grpc-common';

// nice-grpc's CallContext does not expose the TLS peer certificate, so a grpc-js interceptor copies
// the verified certificate's common name and role (its subject OU, issued by scripts/gen-certs.sh)
// into metadata. It first drops any value the caller sent under those names, so the headers can
// only ever hold what TLS verified.

export const PEER_IDENTITY_HEADER = 'x-verified-peer-cn';
export const PEER_ROLE_HEADER = 'x-verified-peer-role';

/** What a certificate of our CA says it is (subject OU). */
export const PEER_ROLES = ['client', 'gateway', 'bank', 'consul'] as const;
export type PeerRole = (typeof PEER_ROLES)[number];

/** The verified caller of a call: its certificate's common name and role, when it has them. */
export interface Peer {
  readonly cn?: string;
  readonly role?: PeerRole;
}

/** Reads the verified peer off a call's metadata (set by the interceptor below). */
export function peerOf(metadata: Metadata): Peer {
  const cn = metadata.get(PEER_IDENTITY_HEADER);
  const role = metadata.get(PEER_ROLE_HEADER);
  return {
    ...(typeof cn === 'string' ? { cn } : {}),
    ...(typeof role === 'string' && isRole(role) ? { role } : {}),
  };
}

function isRole(value: string): value is PeerRole {
  return (PEER_ROLES as readonly string[]).includes(value);
}

/**
 * The interceptor. `needsIdentity(methodPath)` says which calls carry the identity: reading the
 * peer certificate (getPeerCertificate builds a fresh object each time) is skipped for the others
 * (health checks). The headers are removed from every call either way, so they can never hold
 * anything but what TLS verified.
 */
export function peerIdentityInterceptorFor(needsIdentity: (methodPath: string) => boolean): ServerInterceptor {
  return (method, call) => {
    const wanted = needsIdentity(method.path);
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            metadata.remove(PEER_IDENTITY_HEADER);
            metadata.remove(PEER_ROLE_HEADER);
            if (wanted) {
              const subject = call.getAuthContext().sslPeerCertificate?.subject;
              // A subject with several CNs or OUs gives arrays: such a certificate gets neither.
              const cn: unknown = subject?.CN;
              const role: unknown = subject?.OU;
              if (typeof cn === 'string' && cn) metadata.set(PEER_IDENTITY_HEADER, cn);
              if (typeof role === 'string' && isRole(role)) metadata.set(PEER_ROLE_HEADER, role);
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
