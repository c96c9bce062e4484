// Where the nodes are. The coordinator and services see only this interface: static addresses
// now, Consul later, without touching them.

export interface Endpoint {
  /** Address to dial, e.g. "localhost:50051". */
  readonly address: string;
}

export interface Discovery {
  /** A healthy endpoint of the named bank from the current view, or undefined if none. Never does I/O. */
  bank(name: string): Endpoint | undefined;
  /** Names of the banks currently known. */
  bankNames(): readonly string[];
  /** Every gateway instance known to be healthy (several may share one log); empty if none. */
  gateways(): readonly Endpoint[];
  /** Subscribe to changes of the view (a bank appears, moves or goes away). Returns an unsubscribe. */
  onChange(listener: () => void): () => void;
  close(): Promise<void>;
}
