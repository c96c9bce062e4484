import type { JSONWebKeySet } from 'jose';
import type { ConsulApi } from './consul-client.js';

// Trust material in Consul's key/value store: the CA certificate every node verifies its peers
// with, and the gateway's token verification keys (a JWKS whose keys carry their kid). Only
// public material goes there; private keys never leave their node's files.

export interface TrustKeys {
  readonly ca: string;
  readonly jwks: string;
}

export function trustKeys(kvPrefix: string): TrustKeys {
  const base = kvPrefix.replace(/\/+$/, '');
  return { ca: `${base}/trust/ca.crt`, jwks: `${base}/trust/jwks.json` };
}

export interface TrustMaterial {
  /** PEM of the CA certificate. */
  readonly caPem?: string;
  readonly jwks?: JSONWebKeySet;
}

export class TrustMaterialError extends Error {
  override name = 'TrustMaterialError';
}

const PEM_CERT = /^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$/;

/** Writes the CA certificate and the JWKS (whichever is given). */
export async function publishTrust(consul: ConsulApi, kvPrefix: string, material: TrustMaterial, timeoutMs: number): Promise<void> {
  const keys = trustKeys(kvPrefix);
  if (material.caPem !== undefined) {
    if (!PEM_CERT.test(material.caPem)) throw new TrustMaterialError('the CA certificate is not a PEM certificate');
    await put(consul, keys.ca, material.caPem, timeoutMs);
  }
  if (material.jwks !== undefined) {
    assertPublicJwks(material.jwks);
    await put(consul, keys.jwks, JSON.stringify(material.jwks), timeoutMs);
  }
}

/** Reads what is published; a missing key is undefined, malformed content is an error. */
export async function readTrust(consul: ConsulApi, kvPrefix: string, timeoutMs: number): Promise<TrustMaterial> {
  const keys = trustKeys(kvPrefix);
  const caPem = await get(consul, keys.ca, timeoutMs);
  if (caPem !== undefined && !PEM_CERT.test(caPem)) throw new TrustMaterialError(`${keys.ca}: not a PEM certificate`);
  const jwksText = await get(consul, keys.jwks, timeoutMs);
  let jwks: JSONWebKeySet | undefined;
  if (jwksText !== undefined) {
    try {
      jwks = JSON.parse(jwksText) as JSONWebKeySet;
    } catch (err) {
      throw new TrustMaterialError(`${keys.jwks}: not JSON (${(err as Error).message})`);
    }
    assertPublicJwks(jwks, keys.jwks);
  }
  return { ...(caPem !== undefined ? { caPem } : {}), ...(jwks ? { jwks } : {}) };
}

/** A JWKS with a kid on every key and no private members. */
function assertPublicJwks(jwks: JSONWebKeySet, where = 'jwks'): void {
  if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new TrustMaterialError(`${where}: expected {"keys": [...]}`);
  for (const key of jwks.keys) {
    if (typeof key.kid !== 'string' || !key.kid) throw new TrustMaterialError(`${where}: every key needs a kid`);
    if ('d' in key) throw new TrustMaterialError(`${where}: holds a private key`);
  }
}

async function put(consul: ConsulApi, key: string, value: string, timeoutMs: number): Promise<void> {
  const done = await consul.kv.set({ key, value, timeout: timeoutMs });
  if (done !== true) throw new TrustMaterialError(`consul refused to write ${key}`);
}

async function get(consul: ConsulApi, key: string, timeoutMs: number): Promise<string | undefined> {
  const item = await consul.kv.get({ key, timeout: timeoutMs });
  if (!item || typeof item !== 'object' || Array.isArray(item)) return undefined;
  const value = (item as { Value?: unknown }).Value;
  return typeof value === 'string' ? value : undefined;
}
