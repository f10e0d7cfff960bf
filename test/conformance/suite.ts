import { after } from "node:test";
import type { BackendFixture } from "./harness.js";
import { processCases } from "./process-cases.js";
import { recoveryCases } from "./recovery-cases.js";
import { stateCases } from "./state-cases.js";
import { workerCases } from "./worker-cases.js";

export type { BackendFixture } from "./harness.js";

/**
 * The behaviour every backend must show. A backend's test file only builds its fixture and calls
 * this; cases that need a capability check it on the backend and say why they do not apply.
 */
export function runConformance(fixture: BackendFixture): void {
  const opened: Record<string, string>[] = [];
  const tracked: BackendFixture = {
    name: fixture.name,
    env: () => {
      const env = fixture.env();
      opened.push(env);
      return env;
    },
  };
  stateCases(tracked);
  recoveryCases(tracked);
  workerCases(tracked);
  // Real worker processes and signals; each case checks capability sharedAcrossProcesses itself.
  processCases(tracked);
  // A test run leaves nothing behind on a shared server.
  after(() => fixture.cleanUp?.(opened));
}
