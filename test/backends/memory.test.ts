import { runConformance } from "../conformance/suite.js";

runConformance({ name: "memory", env: () => ({ NENC_BACKEND: "memory" }) });
