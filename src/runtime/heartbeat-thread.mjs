// The heartbeat thread: its own event loop and its own backend connection, so a task that blocks
// the runner's event loop does not stop the beats. Plain JS so that it starts whether or not the
// parent loaded a TypeScript loader; it registers one to import the backend.
import { parentPort, workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
const { createBackend } = await import("./backends.ts");
const backend = await createBackend(workerData.config);
let runnerId = workerData.runnerId;
let refused = false;
parentPort.on("message", (message) => {
  if (message.runnerId) {
    runnerId = message.runnerId;
    refused = false;
  }
});

let announced = false;
const beat = async () => {
  const beating = runnerId;
  try {
    const alive = await backend.orchestrator.heartbeat(beating, Date.now());
    if (!alive && !refused && beating === runnerId) {
      refused = true;
      parentPort.postMessage({ refused: beating });
    }
  } catch (error) {
    parentPort.postMessage({ error: String(error?.message ?? error) });
  }
};
const interval = workerData.config.heartbeatIntervalMs;
const loop = async () => {
  await beat();
  if (!announced) {
    // Up and beating (or trying to): the runner's event loop may stop beating itself.
    announced = true;
    parentPort.postMessage({ beating: true });
  }
  setTimeout(loop, interval);
};
await loop();
