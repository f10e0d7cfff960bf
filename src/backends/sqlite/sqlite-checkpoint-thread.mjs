// The WAL checkpointer of one SQLite backend: its own thread and connection, so that copying the
// WAL back into the database file and the fsyncs that go with it never stall the event loop of a
// worker or a client. Plain JS: it needs no TypeScript loader to start.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const { path, intervalMs } = workerData;
const db = new Database(path, { timeout: 1000 });
db.pragma("wal_autocheckpoint = 0");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");

let timer;
const tick = () => {
  try {
    // PASSIVE: copies what it can without waiting for, or blocking, readers and writers.
    checkpoint.run();
  } catch {
    // Busy (another process checkpoints) or a transient error: the next tick tries again.
  }
  timer = setTimeout(tick, intervalMs);
};
timer = setTimeout(tick, intervalMs);

parentPort.on("message", (message) => {
  if (message === "close") {
    clearTimeout(timer);
    db.close();
    parentPort.close();
  }
});
