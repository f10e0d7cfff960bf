import { execFileSync } from "node:child_process";

/** Kernel clock ticks per second (for /proc CPU times); 100 on nearly every Linux. */
export const clockTicks: number = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();
