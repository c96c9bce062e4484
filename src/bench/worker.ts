import { performance } from 'node:perf_hooks';
import { errorText } from '../core/errors.js';
import { Load, type LiveCounts, type Window, type WorkerPlan } from './load.js';
import type { WindowResult } from './stats.js';

// Entry of one load-generator child process (forked by src/bench/run.ts). Protocol over the IPC
// channel: parent -> {plan} ; worker -> {ready} after every session logged in ; parent -> {go,
// window} ; worker -> {progress} every PROGRESS_INTERVAL_MS and finally {result}, then exits.

export type ToWorker = { readonly type: 'plan'; readonly plan: WorkerPlan } | { readonly type: 'go'; readonly window: Window };
export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly live: LiveCounts }
  /** `eventLoopUtilization`: this process's event loop over the measured window, 0..1. */
  | { readonly type: 'result'; readonly result: WindowResult; readonly live: LiveCounts; readonly eventLoopUtilization: number }
  | { readonly type: 'error'; readonly message: string };

export const PROGRESS_INTERVAL_MS = 250;

function send(m: FromWorker): Promise<void> {
  return new Promise((resolve) => process.send!(m, undefined, {}, () => resolve()));
}

if (!process.send) {
  process.stderr.write('src/bench/worker.ts runs as a child of bin/bench\n');
  process.exit(2);
}

let load: Load | undefined;

async function fail(err: unknown): Promise<never> {
  await send({ type: 'error', message: errorText(err) });
  load?.close();
  process.exit(1);
}

process.on('message', (m: ToWorker) => {
  if (m.type === 'plan') {
    void (async () => {
      load = new Load(m.plan);
      await load.login();
      await send({ type: 'ready' });
    })().catch(fail);
    return;
  }
  const running = load!;
  // Progress is best effort and send() never rejects: nothing to wait for.
  const timer = setInterval(() => void send({ type: 'progress', live: { ...running.live } }), PROGRESS_INTERVAL_MS);
  let elu = performance.eventLoopUtilization();
  setTimeout(() => { elu = performance.eventLoopUtilization(); }, Math.max(0, m.window.measureFromMs - Date.now()));
  void running.run(m.window).then(async (result) => {
    clearInterval(timer);
    const eventLoopUtilization = performance.eventLoopUtilization(elu).utilization;
    await send({ type: 'result', result, live: { ...running.live }, eventLoopUtilization });
    running.close();
    process.exit(0);
  }).catch(fail);
});
// The parent going away ends the worker too.
process.on('disconnect', () => process.exit(0));
