import { clip } from '../core/clip.js';
import { AppError } from '../core/errors.js';
import { isUuid } from '../core/ids.js';
import { Decision, type CoordinatorServiceImplementation } from '../gen/coordinator/v1/coordinator.js';
import type { Decided, Transfers } from './transfers.js';

// coordinator.v1.CoordinatorService: a bank that has held a prepared leg for a while asks the
// gateway for the outcome (the participant's termination protocol). Mounted behind a peer allowlist
// of bank certificates (src/gateway/server.ts), without the users' token check.

const DECISION: Readonly<Record<Decided, Decision>> = {
  commit: Decision.DECISION_COMMIT,
  abort: Decision.DECISION_ABORT,
  pending: Decision.DECISION_PENDING,
};

export function createCoordinatorService(transfers: Pick<Transfers, 'decisionOf'>): CoordinatorServiceImplementation {
  return {
    async getDecision(req) {
      if (!isUuid(req.transactionId)) {
        throw new AppError('INVALID_ARGUMENT', `transaction_id must be a UUID, got "${clip(req.transactionId)}"`);
      }
      return { decision: DECISION[await transfers.decisionOf(req.transactionId)] };
    },
  };
}
