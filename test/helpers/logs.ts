import fs from 'node:fs';
import path from 'node:path';
import type { Cluster } from './cluster.js';

// The JSON-lines log files the nodes of a test cluster write (logs/<node>.log), for tests that wait
// for an event only the log shows (a retry, a failed query round).

export interface LogLine {
  readonly message: string;
  readonly level?: string;
  readonly bank?: string;
  readonly transactionId?: string;
  readonly [field: string]: unknown;
}

/** Every line `node` ('gateway', 'BankA' ...) has logged so far, oldest first. */
export function nodeLog(cluster: Cluster, node: string): LogLine[] {
  const file = path.join(cluster.dir, 'logs', `${node}.log`);
  if (!fs.existsSync(file)) return [];
  const out: LogLine[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // The last line of a node killed mid-write (SIGKILL) may be cut short.
    }
  }
  return out;
}

export function gatewayLog(cluster: Cluster): LogLine[] {
  return nodeLog(cluster, 'gateway');
}
