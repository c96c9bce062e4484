import { z } from 'zod';

// config.json, validated at start. Every bound carries its unit in its name.

const host = z.string().min(1);
const port = z.number().int().min(0).max(65535);
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, _ . - (max 64)');
const positiveMs = z.number().int().positive();

export const BankNodeSchema = z.strictObject({
  host: host.default('127.0.0.1'),
  port: port,
  dataDir: z.string().min(1),
  /** Where the gateway dials this bank (static discovery). */
  address: z.string().min(1).optional(),
});

export const ConfigSchema = z.strictObject({
  tls: z.strictObject({
    dir: z.string().min(1).default('certs'),
    /** Common name of the only client certificate a bank accepts. */
    gatewayIdentity: z.string().min(1).default('gateway'),
  }).prefault({}),
  logging: z.strictObject({
    dir: z.string().min(1).default('logs'),
    level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    console: z.boolean().default(true),
  }).prefault({}),
  discovery: z.strictObject({
    mode: z.enum(['static']).default('static'),
  }).prefault({}),
  gateway: z.strictObject({
    host: host.default('127.0.0.1'),
    port: port.default(50050),
    dataDir: z.string().min(1).default('data/gateway'),
    tokenTtlSeconds: z.number().int().positive().default(3600),
    prepareTimeoutMs: positiveMs.default(5000),
    /** Deadline of one Commit/Abort call to a bank. */
    phase2CallTimeoutMs: positiveMs.default(2000),
    commitRetryIntervalMs: positiveMs.default(100),
    commitRetryMaxIntervalMs: positiveMs.default(5000),
    /** How long CreateTransfer waits for commit acks before answering COMMITTED anyway. */
    replyAckWaitMs: positiveMs.default(2000),
    bankCallTimeoutMs: positiveMs.default(3000),
    /** Attempts for a bank read or login that fails with UNAVAILABLE (1 = no retry). */
    bankCallRetryMaxAttempts: z.number().int().min(1).max(10).default(2),
    bankCallRetryBaseDelayMs: positiveMs.default(50),
    bankCallRetryMaxDelayMs: positiveMs.default(500),
    /** Largest amount a single transfer may move, in minor units (string: int64). */
    maxTransferAmountMinor: z.string().regex(/^[1-9][0-9]{0,18}$/).default('100000000'),
    historyPageSizeDefault: z.number().int().positive().max(1000).default(20),
    historyPageSizeMax: z.number().int().positive().max(1000).default(100),
    /** Transfers running at once; beyond it CreateTransfer answers RESOURCE_EXHAUSTED. */
    inFlightTransfersMax: z.number().int().positive().default(10000),
    shutdownGraceMs: positiveMs.default(5000),
  }).prefault({}),
  banks: z.record(name, BankNodeSchema).default({}),
  /** Limits shared by every bank node. */
  bank: z.strictObject({
    historyPageSizeDefault: z.number().int().positive().max(1000).default(20),
    historyPageSizeMax: z.number().int().positive().max(1000).default(100),
    /** After SIGINT/SIGTERM, how long in-flight calls may take before the process exits anyway. */
    shutdownGraceMs: positiveMs.default(5000),
  }).prefault({}),
  client: z.strictObject({
    gatewayAddress: z.string().min(1).default('localhost:50050'),
    callTimeoutMs: positiveMs.default(5000),
    /** Attempts for a call that is safe to repeat, when the answer is UNAVAILABLE. */
    retryMaxAttempts: z.number().int().min(1).max(20).default(4),
    retryBaseDelayMs: positiveMs.default(100),
    retryMaxDelayMs: positiveMs.default(2000),
    /** Session and outbox folder; "~" is the user's home. */
    dataDir: z.string().min(1).default('~/.payments-client'),
  }).prefault({}),
}).refine((c) => c.gateway.historyPageSizeDefault <= c.gateway.historyPageSizeMax, {
  message: 'gateway.historyPageSizeDefault must be <= gateway.historyPageSizeMax',
  path: ['gateway', 'historyPageSizeDefault'],
}).refine((c) => c.bank.historyPageSizeDefault <= c.bank.historyPageSizeMax, {
  message: 'bank.historyPageSizeDefault must be <= bank.historyPageSizeMax',
  path: ['bank', 'historyPageSizeDefault'],
});

export type Config = z.infer<typeof ConfigSchema>;
export type BankNodeConfig = z.infer<typeof BankNodeSchema>;
