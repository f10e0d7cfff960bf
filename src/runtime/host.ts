import { createHash } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Where a runner lives. Two runners with the same hostId share a kernel and a PID namespace, so
 * one can ask the kernel whether the other's process still exists: that is how a SIGKILLed
 * runner is found within a recovery interval instead of a heartbeat timeout.
 */
export const hostId: string = (() => {
  const parts = [hostname(), readOr("/proc/sys/kernel/random/boot_id"), linkOr("/proc/self/ns/pid")];
  return createHash("sha256").update(parts.join("|")).digest("hex").slice(0, 16);
})();

/** The kernel's start time of a process (clock ticks since boot), to tell a reused pid apart. */
export function processStartTime(pid: number): string | null {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? null;
}

/** False only when this host can tell for sure that the process is gone (or is a zombie). */
export function processAlive(pid: number, startTime: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return true; // no procfs: the signal check is all we have
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return false;
  return startTime === null || fields[19] === startTime;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

function linkOr(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}
