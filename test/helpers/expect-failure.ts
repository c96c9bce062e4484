import { expect } from 'chai';
import { ClientError, Status } from 'nice-grpc';
import { reasonOf } from '../../src/grpc/errors.js';

/** Asserts that the call fails with this gRPC status (and ErrorInfo reason, if given); returns the error. */
export async function expectFailure(call: Promise<unknown>, code: Status, reason?: string): Promise<ClientError> {
  try {
    await call;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(ClientError);
    const e = err as ClientError;
    expect(Status[e.code], e.details).to.equal(Status[code]);
    if (reason) expect(reasonOf(e), e.details).to.equal(reason);
    return e;
  }
  throw new Error(`expected ${Status[code]} ${reason ?? ''}, but the call succeeded`);
}
