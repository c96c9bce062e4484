import { toJson } from '../core/json.js';

// Process conventions shared by every node (tests and scripts rely on them).

/**
 * Announces readiness on stdout as one JSON line: {"event":"listening","node":"BankA","port":50051}.
 * Test harnesses and scripts wait for this line to learn the ephemeral port.
 */
export function announceListening(node: string, port: number, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${toJson({ event: 'listening', node, port, ...extra })}\n`);
}

/**
 * Runs `shutdown` once on the first SIGINT/SIGTERM, then exits 0; a second signal exits at once.
 * `shutdown` should stop accepting calls, finish or abandon in-flight work, and close stores.
 */
export function onShutdownSignal(shutdown: (signal: string) => Promise<void>, forceAfterMs: number): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    const force = setTimeout(() => process.exit(1), forceAfterMs);
    force.unref();
    shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
