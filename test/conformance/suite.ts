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
  stateCases(fixture);
  recoveryCases(fixture);
  workerCases(fixture);
  // Real worker processes and signals; each case checks capability sharedAcrossProcesses itself.
  processCases(fixture);
}
