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
  /** Prometheus endpoint of this bank (GET /metrics on metrics.host); unset = no endpoint; 0 = an ephemeral port. */
  metricsPort: port.optional(),
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
    /** Longest string value written to a log line; longer ones are cut, their length noted (last line of defence: callers' values are cut where they are echoed). */
    fieldMaxChars: z.number().int().min(64).max(1_000_000).default(1024),
    /** A successful call that took at least this long is logged at info, the others at debug (0: every call at info). */
    slowCallMs: z.number().int().min(0).max(3_600_000).default(1000),
  }).prefault({}),
  /** The nodes' Prometheus endpoints (plain HTTP); each is on only with its port set: gateway.metricsPort, banks.<name>.metricsPort. */
  metrics: z.strictObject({
    /** Where the endpoints listen: loopback unless a scraper on another machine must reach them (they are not authenticated). */
    host: host.default('127.0.0.1'),
    /** Scrapers connected at once at most; more wait in the kernel's backlog. */
    connectionsMax: z.number().int().positive().max(10_000).default(16),
    /** A scrape must have sent its request within this. */
    requestTimeoutMs: positiveMs.default(10_000),
  }).prefault({}),
  /** Every node's outbound gRPC channels (gateway to banks, banks to the gateway, clients to the gateway). */
  grpc: z.strictObject({
    /**
     * After a failed connection attempt, the wait before the next one; meanwhile calls fail fast
     * (UNAVAILABLE) instead of queueing until their deadline. It doubles after each failure.
     */
    reconnectBackoffInitialMs: positiveMs.default(200),
    /** The longest reconnect wait; a peer that comes back is found again within it. */
    reconnectBackoffMaxMs: positiveMs.default(1000),
  }).prefault({}),
  discovery: z.strictObject({
    /** 'consul' (config.json's choice) or 'static' (addresses from this file; no Consul needed). */
    mode: z.enum(['static', 'consul']).default('static'),
  }).prefault({}),
  /** The local Consul agent: registration, health checks, discovery watches and trust material in KV. */
  consul: z.strictObject({
    host: host.default('127.0.0.1'),
    /** HTTP API port of the agent (`make consul` starts one on 18500). */
    httpPort: port.default(8500),
    /** Deadline of a Consul call other than a blocking query (register, KV, lookups). */
    requestTimeoutMs: positiveMs.default(3000),
    /** With mode 'consul': if the agent cannot be reached at start, use static discovery (with a notice). */
    fallbackToStatic: z.boolean().default(true),
    gatewayService: name.default('payments-gateway'),
    bankService: name.default('payments-bank'),
    /** The gRPC health check Consul runs against every node (over mutual TLS). */
    checkIntervalMs: positiveMs.default(1000),
    checkTimeoutMs: positiveMs.default(1000),
    /** Consul removes a node whose check stays critical this long (Consul's minimum is 60 s; its reaper runs every 30 s). */
    deregisterCriticalServiceAfterSeconds: z.number().int().min(60).default(60),
    /** How long one blocking query (watch) may wait for a change. */
    watchWaitSeconds: z.number().int().min(1).max(300).default(30),
    /** Backoff of a watch while the agent is unreachable (last known addresses stay in use). */
    watchRetryBaseDelayMs: positiveMs.default(250),
    watchRetryMaxDelayMs: positiveMs.default(5000),
    /** How often a node checks that its registration is still there (re-registers after an agent restart). */
    registrationRefreshMs: positiveMs.default(5000),
    /** KV folder of the trust material: <kvPrefix>/trust/ca.crt and <kvPrefix>/trust/jwks.json. */
    kvPrefix: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$/).default('payments'),
    /** Read the CA certificate (and, for token checks, the JWKS) from Consul KV instead of local files. */
    trustFromKv: z.boolean().default(false),
  }).prefault({}),
  gateway: z.strictObject({
    host: host.default('127.0.0.1'),
    port: port.default(50050),
    /** Prometheus endpoint (GET /metrics on metrics.host); unset = no endpoint; 0 = an ephemeral port. */
    metricsPort: port.optional(),
    dataDir: z.string().min(1).default('data/gateway'),
    /** This gateway among several sharing one log (`--instance-id`): owner of its transfers, its Consul service id. */
    instanceId: name.default('g1'),
    /**
     * Backend of the coordinator log: `sqlite` = one file in dataDir (one gateway); `postgres` = a
     * database several gateways share (log, logouts, token verify keys), see gateway.postgres.
     */
    store: z.enum(['sqlite', 'postgres']).default('sqlite'),
    postgres: z.strictObject({
      host: host.default('127.0.0.1'),
      port: port.default(5432),
      database: z.string().min(1).default('payments'),
      user: z.string().min(1).default('payments'),
      /** Name of the environment variable holding the password (never the password itself). */
      passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
      /** A file holding the password; it must not be readable by group or others (0600). */
      passwordFile: z.string().min(1).optional(),
      /** TLS to PostgreSQL; the server's certificate is verified (against sslCaFile, or the system's CAs). */
      ssl: z.boolean().default(false),
      /** PEM file of the CA(s) that issued PostgreSQL's certificate (a private CA), trusted instead of the system's; needs ssl. */
      sslCaFile: z.string().min(1).optional(),
      /** Connections at most (group commits, reads, leases). */
      poolMax: z.number().int().min(2).max(200).default(10),
      connectTimeoutMs: positiveMs.default(5000),
      /** Longest a statement may run before PostgreSQL cancels it. */
      statementTimeoutMs: positiveMs.default(10_000),
    }).prefault({}),
    /** Shared log: an owner that has not renewed its lease on a transfer for this long loses it to another gateway. */
    leaseMs: positiveMs.min(500).max(600_000).default(3000),
    /** Shared log: how often an owner renews the leases of all its unfinished transfers (one statement); well below leaseMs. */
    leaseRenewIntervalMs: positiveMs.default(1000),
    /** Shared log: how often a gateway looks for expired leases to take over. */
    takeoverIntervalMs: positiveMs.default(1000),
    /** Shared log: transfers taken over per look at most (the rest at the next one). */
    takeoverBatchMax: z.number().int().positive().max(10_000).default(200),
    /** Shared log: how often each gateway re-reads the logouts made at the others (a revoked token is refused everywhere within about this). */
    revocationSyncIntervalMs: positiveMs.max(10_000).default(250),
    /** Shared log: a revocation list not re-read for this long is not trusted; token checks then ask the database. */
    revocationMaxStalenessMs: positiveMs.max(60_000).default(1000),
    /** Shared log: a token naming a key id nobody published makes a gateway re-read the shared keys at most this often (forged ids cannot flood the database). */
    tokenKeyRefreshMinIntervalMs: positiveMs.max(60_000).default(1000),
    /** A request for a transfer another gateway is running re-reads the shared log this often until it is decided. */
    transferPollIntervalMs: positiveMs.max(10_000).default(50),
    /**
     * A transfer the log could not write a record for (its decision: its run stopped, undecided,
     * its holds stay; an ack or completion: the log is behind) is handed on this often once no run
     * drives it: with an own log, driven again from what the log holds (presumed abort, or phase
     * 2) as soon as the log writes again; with a shared log, its lease is let lapse for a takeover.
     */
    strandedRetryIntervalMs: positiveMs.max(60_000).default(1000),
    tokenTtlSeconds: z.number().int().positive().default(3600),
    /** Verified tokens remembered (each until its expiry; saves a signature check per call); the oldest goes first when full. */
    verifiedTokensMax: z.number().int().min(0).max(10_000_000).default(10_000),
    prepareTimeoutMs: positiveMs.default(5000),
    /** Deadline of one Commit/Abort call to a bank. */
    phase2CallTimeoutMs: positiveMs.default(2000),
    commitRetryIntervalMs: positiveMs.default(100),
    commitRetryMaxIntervalMs: positiveMs.default(5000),
    /**
     * How long CreateTransfer waits for the banks' commit acks after its durable decision before
     * answering COMMITTED anyway; 0 (the default) = answer at the durable decision, one round trip
     * earlier (the banks' reads wait for such transfers: bank.readSettleWaitMaxMs).
     */
    replyAckWaitMs: z.number().int().min(0).max(60_000).default(0),
    bankCallTimeoutMs: positiveMs.default(3000),
    /**
     * Attempts for a bank read or login that fails with UNAVAILABLE (1 = no retry). The defaults
     * wait at least 1.25 s in all (equal jitter: 50+100+200+400+500 ms), longer than a channel's
     * reconnect back-off (1 s, src/grpc/client.ts): a bank that just restarted answers the retry.
     */
    bankCallRetryMaxAttempts: z.number().int().min(1).max(10).default(6),
    bankCallRetryBaseDelayMs: positiveMs.default(100),
    bankCallRetryMaxDelayMs: positiveMs.default(1000),
    /** Largest amount a single transfer may move, in minor units (string: int64). */
    maxTransferAmountMinor: z.string().regex(/^[1-9][0-9]{0,18}$/).default('100000000'),
    historyPageSizeDefault: z.number().int().positive().max(1000).default(20),
    historyPageSizeMax: z.number().int().positive().max(1000).default(100),
    /** Transfers running at once; beyond it CreateTransfer answers RESOURCE_EXHAUSTED. */
    inFlightTransfersMax: z.number().int().positive().default(10000),
    shutdownGraceMs: positiveMs.default(5000),
    /** Final transfers and their idempotency keys are kept at least this long, then pruned. */
    idempotencyRetentionHours: z.number().int().positive().default(24),
    idempotencyPruneIntervalMs: positiveMs.default(60_000),
    /** Rows deleted per pruning transaction. */
    idempotencyPruneBatchMax: z.number().int().positive().max(100_000).default(1000),
    /** Pruning transactions per round at most; a larger backlog is worked off over the next rounds. */
    idempotencyPruneBatchesPerRoundMax: z.number().int().positive().max(10_000).default(20),
    /** Group commit: coordinator records written in one transaction (one fsync) at most. */
    persistBatchMaxRecords: z.number().int().positive().max(100_000).default(1024),
    /** Group commit: how long a record waits for others; 0 = until the end of the event-loop turn. */
    persistBatchWindowMs: z.number().int().min(0).max(100).default(0),
    /** Group commit: how long an ack/completion record (nobody waits for it) may wait for the next group commit. */
    persistBackgroundDelayMs: z.number().int().min(0).max(10_000).default(20),
    /** 2PC calls coalesced per bank: legs / transaction ids in one PrepareBatch, CommitBatch or AbortBatch at most. */
    bankBatchMaxItems: z.number().int().positive().max(10_000).default(256),
    /** How long a queued 2PC call waits for others to the same bank; 0 = until the end of the event-loop turn. */
    bankBatchWindowMs: z.number().int().min(0).max(100).default(0),
    /** The 2PC batches go as messages on one long-lived BatchStream per bank (false: a unary call each). */
    bankBatchStream: z.boolean().default(true),
    /** Largest request message the public server accepts; a larger one is refused (RESOURCE_EXHAUSTED) before any handler runs. */
    maxReceiveMessageBytes: z.number().int().min(1024).max(4 * 1024 * 1024).default(65_536),
    /** Login throttling: failed logins of one account (bank + username) within the window before back-off starts. */
    loginAccountFailuresMax: z.number().int().positive().max(1000).default(5),
    /** Login throttling: failed logins from one caller (certificate name + IP address) within the window before back-off starts. */
    loginPeerFailuresMax: z.number().int().positive().max(100_000).default(20),
    /** Login throttling: failures are forgotten once none happened for this long (after any back-off ended). */
    loginFailureWindowMs: positiveMs.default(86_400_000),
    /** Login throttling: the first back-off; it doubles with each further failure. */
    loginBackoffBaseMs: positiveMs.default(1000),
    /** Login throttling: the longest back-off. */
    loginBackoffMaxMs: positiveMs.default(900_000),
    /** Login throttling: entries kept per table (accounts, callers); the least recently failed is evicted first. */
    loginThrottleEntriesMax: z.number().int().positive().max(10_000_000).default(100_000),
    /** Login throttling shared by several gateways (PostgreSQL): how often each instance prunes the shared table. */
    loginThrottlePruneIntervalMs: positiveMs.default(60_000),
    /** Login throttling shared by several gateways: rows deleted per pruning statement at most. */
    loginThrottlePruneBatchMax: z.number().int().positive().max(1_000_000).default(10_000),
  }).prefault({}),
  banks: z.record(name, BankNodeSchema).default({}),
  /** Limits shared by every bank node. */
  bank: z.strictObject({
    historyPageSizeDefault: z.number().int().positive().max(1000).default(20),
    historyPageSizeMax: z.number().int().positive().max(1000).default(100),
    /** After SIGINT/SIGTERM, how long in-flight calls may take before the process exits anyway. */
    shutdownGraceMs: positiveMs.default(5000),
    /** A leg prepared longer than this makes the bank ask the gateway for the outcome. */
    inDoubtQueryAfterMs: positiveMs.default(10_000),
    /** How often the bank looks for such legs. */
    inDoubtCheckIntervalMs: positiveMs.default(1000),
    /** Legs asked about per round. */
    inDoubtQueryBatchMax: z.number().int().positive().max(10_000).default(100),
    /** Deadline of one decision query. */
    inDoubtQueryTimeoutMs: positiveMs.default(2000),
    /** While the gateway is unreachable the pause between rounds doubles up to this. */
    inDoubtRetryMaxIntervalMs: positiveMs.default(30_000),
    /** Items one PrepareBatch / CommitBatch / AbortBatch may carry (the gateway's bankBatchMaxItems must not exceed it). */
    batchItemsMax: z.number().int().positive().max(10_000).default(1024),
    /** Group commit: 2PC operations performed in one SQLite transaction (one fsync) at most. */
    groupCommitOpsMax: z.number().int().positive().max(100_000).default(1024),
    /** Group commit: how long an operation waits for others; 0 = until the end of the event-loop turn. */
    groupCommitWindowMs: z.number().int().min(0).max(100).default(0),
    /** argon2 password checks running at once (each takes a CPU core for ~100 ms); more wait in a queue. */
    passwordChecksMax: z.number().int().positive().max(64).default(2),
    /** Password checks waiting for a slot; beyond it Authenticate answers RESOURCE_EXHAUSTED BANK_BUSY. */
    passwordCheckQueueMax: z.number().int().min(0).max(10_000).default(32),
    /**
     * A balance or history read first waits this long at most for the account's legs prepared
     * before it to be committed or aborted (the gateway answers COMMITTED at its durable decision,
     * one round trip before the banks apply it); 0 = reads never wait. See src/bank/settled-reads.ts.
     */
    readSettleWaitMaxMs: z.number().int().min(0).max(60_000).default(1000),
    /** Reads waiting so at once; beyond it such a read answers RESOURCE_EXHAUSTED BANK_BUSY. */
    readSettleWaitersMax: z.number().int().min(0).max(100_000).default(1024),
  }).prefault({}),
  client: z.strictObject({
    gatewayAddress: z.string().min(1).default('localhost:50050'),
    callTimeoutMs: positiveMs.default(5000),
    /**
     * Attempts for a call that is safe to repeat, when the answer is UNAVAILABLE. The defaults wait
     * at least 1.55 s in all (equal jitter: 50+100+200+400+800 ms), longer than the channel's
     * reconnect back-off (grpc.reconnectBackoffMaxMs, 1 s): a long-lived client (interactive mode)
     * rides out a gateway restart.
     */
    retryMaxAttempts: z.number().int().min(1).max(20).default(6),
    retryBaseDelayMs: positiveMs.default(100),
    retryMaxDelayMs: positiveMs.default(2000),
    /** Session and outbox folder; "~" is the user's home. */
    dataDir: z.string().min(1).default('~/.payments-client'),
    /** Offline outbox: pause between worker passes over queued payments. */
    outboxRetryIntervalMs: positiveMs.default(200),
    /** Offline outbox: payments waiting at once; a new payment beyond it is refused (OUTBOX_FULL). */
    outboxMaxEntries: z.number().int().positive().max(100_000).default(1000),
    /** Offline outbox: finished entries kept for `queue list` (oldest deleted first). */
    outboxHistoryMax: z.number().int().min(0).max(100_000).default(1000),
    /** Offline outbox: a payment never sent within this age expires (a sent one is resolved first). */
    outboxMaxAgeMs: positiveMs.default(86_400_000),
    /** Offline outbox: how long one attempt waits for a connection to the gateway. */
    outboxConnectTimeoutMs: positiveMs.default(1000),
    /** Offline outbox: how long `transfer` and `login` work on the queue before returning. */
    outboxResumeMaxMs: positiveMs.default(15_000),
    /** Offline outbox: one process sends at a time; its claim lapses after this unless renewed. */
    outboxLeaseMs: positiveMs.default(10_000),
  }).prefault({}),
}).refine((c) => c.gateway.historyPageSizeDefault <= c.gateway.historyPageSizeMax, {
  message: 'gateway.historyPageSizeDefault must be <= gateway.historyPageSizeMax',
  path: ['gateway', 'historyPageSizeDefault'],
}).refine((c) => c.bank.historyPageSizeDefault <= c.bank.historyPageSizeMax, {
  message: 'bank.historyPageSizeDefault must be <= bank.historyPageSizeMax',
  path: ['bank', 'historyPageSizeDefault'],
}).refine((c) => c.gateway.loginBackoffBaseMs <= c.gateway.loginBackoffMaxMs, {
  message: 'gateway.loginBackoffBaseMs must be <= gateway.loginBackoffMaxMs',
  path: ['gateway', 'loginBackoffBaseMs'],
}).refine((c) => c.grpc.reconnectBackoffInitialMs <= c.grpc.reconnectBackoffMaxMs, {
  message: 'grpc.reconnectBackoffInitialMs must be <= grpc.reconnectBackoffMaxMs',
  path: ['grpc', 'reconnectBackoffInitialMs'],
}).refine((c) => c.gateway.bankBatchMaxItems <= c.bank.batchItemsMax, {
  message: 'gateway.bankBatchMaxItems must be <= bank.batchItemsMax (a bank refuses larger batches)',
  path: ['gateway', 'bankBatchMaxItems'],
}).refine((c) => c.gateway.postgres.sslCaFile === undefined || c.gateway.postgres.ssl, {
  message: 'gateway.postgres.sslCaFile needs gateway.postgres.ssl = true (without TLS there is no certificate to check)',
  path: ['gateway', 'postgres', 'sslCaFile'],
}).refine((c) => c.gateway.leaseRenewIntervalMs * 2 <= c.gateway.leaseMs, {
  message: 'gateway.leaseRenewIntervalMs must be at most half of gateway.leaseMs (one missed renewal must not lose a lease)',
  path: ['gateway', 'leaseRenewIntervalMs'],
});

export type Config = z.infer<typeof ConfigSchema>;
export type BankNodeConfig = z.infer<typeof BankNodeSchema>;
