import { Gauge, type Registry } from 'prom-client';

// Whether the node's Consul watches get answers (src/discovery/consul.ts). No series with static
// discovery.

/** Returns what ConsulDiscovery tells after each answer (up) or failure of a watch. */
export function consulWatchMetrics(registry: Registry): (service: string, up: boolean) => void {
  const gauge = new Gauge({
    name: 'payments_consul_watch_up',
    help: '1 while the Consul watch of a service gets answers, 0 while the agent cannot be reached (last known addresses in use).',
    labelNames: ['service'] as const,
    registers: [registry],
  });
  return (service, up) => gauge.set({ service }, up ? 1 : 0);
}
