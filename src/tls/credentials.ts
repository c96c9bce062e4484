import fs from 'node:fs';
import path from 'node:path';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';

// Every connection is mutual TLS: servers require a client certificate from our CA.

export interface TlsMaterial {
  readonly ca: Buffer;
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** File names inside the certificate folder made by scripts/gen-certs.sh. */
export function tlsPaths(dir: string, identity: string): { ca: string; key: string; cert: string } {
  return {
    ca: path.join(dir, 'ca.crt'),
    key: path.join(dir, `${identity}.key`),
    cert: path.join(dir, `${identity}.crt`),
  };
}

export function loadTls(dir: string, identity: string): TlsMaterial {
  const p = tlsPaths(dir, identity);
  for (const f of Object.values(p)) {
    if (!fs.existsSync(f)) {
      throw new Error(`missing TLS file ${f}: run \`make certs\` (or scripts/gen-certs.sh ${dir} ...)`);
    }
  }
  return { ca: fs.readFileSync(p.ca), key: fs.readFileSync(p.key), cert: fs.readFileSync(p.cert) };
}

export function serverCredentials(tls: TlsMaterial): ServerCredentials {
  return ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

export function channelCredentials(tls: TlsMaterial): ChannelCredentials {
  return ChannelCredentials.createSsl(tls.ca, tls.key, tls.cert);
}

/** TLS certificates name localhost; dialing 127.0.0.1 by IP makes Node warn (DEP0123). */
export function dialAddress(host: string, port: number): string {
  const h = host === '127.0.0.1' || host === '0.0.0.0' || host === '::1' ? 'localhost' : host;
  return `${h}:${port}`;
}
