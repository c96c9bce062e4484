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

// Reading the peer certificate (getPeerCertificate builds a fresh object with its fingerprints) costs
// ~90 us on this machine: too much for every call. A connection's certificate cannot change (HTTP/2
// forbids TLS renegotiation), so the peer is read once per HTTP/2 session and kept with it. grpc-js
// exposes no session to interceptors: the first interceptor gets grpc-js's base call, whose
// `stream.session` it is. If that ever changes the lookup finds nothing and every call reads the
// certificate again (correct, only slower).
const peersBySession = new WeakMap<object, Peer>();
let certificateReads = 0;

type AnyCall = Parameters<ServerInterceptor>[1];

function verifiedPeer(call: AnyCall): Peer {
  const session = (call as unknown as { stream?: { session?: unknown } }).stream?.session;
  const key = typeof session === 'object' && session !== null ? session : undefined;
  const cached = key && peersBySession.get(key);
  if (cached) return cached;
  certificateReads++;
  const subject = call.getAuthContext().sslPeerCertificate?.subject;
  if (!subject) return {};
  // A subject with several CNs or OUs gives arrays: such a certificate gets neither.
  const cn: unknown = subject.CN;
  const role: unknown = subject.OU;
  const peer: Peer = {
    ...(typeof cn === 'string' && cn ? { cn } : {}),
    ...(typeof role === 'string' && isRole(role) ? { role } : {}),
  };
  if (key) peersBySession.set(key, peer);
  return peer;
}

/**
 * The interceptor; createNodeServer installs it first. `needsIdentity(methodPath)` says which calls
 * carry the identity (health checks do not). The headers are removed from every call either way,
 * so they can never hold anything but what TLS verified.
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
              const peer = verifiedPeer(call);
              if (peer.cn) metadata.set(PEER_IDENTITY_HEADER, peer.cn);
              if (peer.role) metadata.set(PEER_ROLE_HEADER, peer.role);
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

/** How often a peer certificate was read in this process (a test checks it is once per connection). */
export function peerCertificateReads(): number {
  return certificateReads;
}
