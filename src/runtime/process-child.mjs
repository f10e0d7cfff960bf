// Entry of a process-runner child. Plain JS so that it starts whether or not the parent loaded a
// TypeScript loader; it registers one, then runs the child loop. argv[2] is the app module.
import { register } from "tsx/esm/api";

register();
const { runChild } = await import("./process-child.ts");
await runChild(process.argv[2]);
