import { defaultCapabilities, type Backend, type Capabilities } from "../../ports/backend.js";
import { MemoryBroker } from "./memory-broker.js";
import { MemoryOrchestrator } from "./memory-orchestrator.js";
import { MemoryState } from "./memory-state.js";
import { MemoryStore } from "./memory-store.js";

/** Everything in this process's memory: for tests and for apps that run in one process. */
export class MemoryBackend implements Backend {
  readonly kind = "memory";
  readonly capabilities: Capabilities = { ...defaultCapabilities, sharedAcrossProcesses: false };
  readonly orchestrator: MemoryOrchestrator;
  readonly broker: MemoryBroker;
  readonly state: MemoryState;

  constructor(store = new MemoryStore()) {
    this.orchestrator = new MemoryOrchestrator(store);
    this.broker = new MemoryBroker(store);
    this.state = new MemoryState(store);
  }

  async close(): Promise<void> {}
}

export function createMemoryBackend(): MemoryBackend {
  return new MemoryBackend();
}
