// Holds the write lock on silver.sqlite and gold.sqlite of a data dir for N ms, as a competing
// writer would. Prints "locked" once it holds both.
import Database from "better-sqlite3";
import { join } from "node:path";
const [dir, ms] = process.argv.slice(2);
const dbs = ["silver", "gold"].map((l) => new Database(join(dir, `${l}.sqlite`)));
for (const db of dbs) db.exec("BEGIN IMMEDIATE");
process.stdout.write("locked\n");
setTimeout(() => {
  for (const db of dbs) {
    db.exec("COMMIT");
    db.close();
  }
}, Number(ms));
