// The WAL checkpointer of one SQLite backend: its own thread and connection, so that copying the
// WAL back into the database file and the fsyncs that go with it never stall the event loop of a
// worker or a client. It runs when told that writes happened, and sleeps otherwise. Plain JS: it
// needs no TypeScript loader to start.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const db = new Database(workerData.path, { timeout: 1000 });
db.pragma("wal_autocheckpoint = 0");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");

parentPort.on("message", (message) => {
  if (message === "checkpoint") {
    try {
      // PASSIVE: copies what it can without waiting for, or blocking, readers and writers.
      checkpoint.get();
    } catch {
      // Busy (another process checkpoints) or a transient error: the next request tries again.
    }
  } else if (message === "close") {
    db.close();
    parentPort.close();
  }
});
