import { ClientError, Status } from 'nice-grpc';
import { ErrorInfo, RetryInfo, RichClientError } from 'nice-grpc-error-details';

// Reads the one machine-readable reason (google.rpc.ErrorInfo) off a failed call.
export function reasonOf(err: unknown): string | undefined {
  if (err instanceof RichClientError) {
    for (const d of err.extra) if (d.$type === ErrorInfo.$type) return d.reason;
  }
  return undefined;
}

/** The google.rpc.RetryInfo delay of a failed call, in ms, if the server sent one. */
export function retryDelayMsOf(err: unknown): number | undefined {
  if (err instanceof RichClientError) {
    for (const d of err.extra) {
      if (d.$type === RetryInfo.$type) {
        const delay = d.retryDelay;
        return delay === undefined ? undefined : delay.seconds * 1000 + Math.round(delay.nanos / 1_000_000);
      }
    }
  }
  return undefined;
}

export function statusOf(err: unknown): Status | undefined {
  return err instanceof ClientError ? err.code : undefined;
}

export function statusName(err: unknown): string {
  const s = statusOf(err);
  return s === undefined ? 'UNKNOWN' : Status[s];
}
