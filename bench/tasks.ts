import { Nenc } from "../src/index.js";

/** Tasks for the benchmarks; the backend comes from NENC_* variables set by the driver. */
export const app = new Nenc({ appId: process.env["NENC_APP_ID"] ?? "bench" });

export const noop = app.task("noop", async (_n: number) => undefined);

export const slow = app.task("slow", async (ms: number) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return "done";
});
