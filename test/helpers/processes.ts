import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const READY_TIMEOUT_MS = 30_000;

/** A node (bank or gateway) running as a real child process. */
export interface NodeProcess {
  readonly name: string;
  readonly port: number;
  /** Its Prometheus endpoint's port, from the ready line; undefined when its metricsPort is unset. */
  readonly metricsPort: number | undefined;
  readonly child: ChildProcess;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
}

/** Starts `bin/<bin> ...args` and resolves when it prints its ready line. */
export function startNode(bin: 'bank' | 'gateway', name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
  const child = spawn(path.join(ROOT, 'bin', bin), args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not become ready in ${READY_TIMEOUT_MS} ms:\n${out}`));
    }, READY_TIMEOUT_MS);
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      out += text;
      buffered += text;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith('{"event":"listening"')) continue;
        const ready = JSON.parse(line) as { port: number; metricsPort?: number };
        clearTimeout(timer);
        resolve({ name, port: ready.port, metricsPort: ready.metricsPort, child, output: () => out, exited });
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
}

/** Runs a bin command to completion; resolves with its exit code and output. */
export function runBin(
  bin: 'bank' | 'gateway' | 'client',
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'bin', bin), args, {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bin/${bin} ${args.join(' ')} timed out:\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export async function stopNode(node: NodeProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return node.exited;
  node.child.kill(signal);
  return node.exited;
}
