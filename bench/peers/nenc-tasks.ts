import { Nenc } from "../../src/index.js";
import { noteNoop, reportStart, sleep } from "./report.js";

/** The peers bench's tasks on a nenc app: the same jobs every peer runs (see ./report.ts). */
export function defineBenchTasks(app: Nenc) {
  return {
    noop: app.task("noop", async (_n: number) => noteNoop()),
    probe: app.task("probe", async (key: string) => reportStart(key)),
    hold: app.task("hold", async (key: string, ms: number) => {
      reportStart(key);
      await sleep(ms);
    }),
  };
}

/** The app `nenc worker --app bench/peers/nenc-tasks.ts` runs; the backend comes from NENC_* set by the driver. */
export const app = new Nenc({ appId: process.env["NENC_APP_ID"] ?? "bench-peers" });
defineBenchTasks(app);
