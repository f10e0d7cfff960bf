import { SystemUnavailable } from "./system.js";

export type GraphileWorker = typeof import("graphile-worker");

/** graphile-worker by package name (the 0.16.6 devDependency or its 0.17 alias). */
export async function loadGraphile(packageName: string): Promise<GraphileWorker> {
  try {
    return (await import(packageName)) as GraphileWorker;
  } catch (error) {
    throw new SystemUnavailable(`${packageName} is not installed (${(error as Error).message.split("\n")[0]})`);
  }
}
