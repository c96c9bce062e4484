import { ClientError, Status } from 'nice-grpc';
import { ErrorInfo, RichClientError } from 'nice-grpc-error-details';

// Reads the one machine-readable reason (google.rpc.ErrorInfo) off a failed call.
export function reasonOf(err: unknown): string | undefined {
  if (err instanceof RichClientError) {
    for (const d of err.extra) if (d.$type === ErrorInfo.$type) return (d as ErrorInfo).reason;
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
