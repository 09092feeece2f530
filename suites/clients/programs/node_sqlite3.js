// node_sqlite3.js — node's `sqlite3` (npm, with its own SQLite inside an RTLD_LOCAL addon): two databases opened, one closed, process.exit(7) with the other open; prints what it saw so a run under the detector can be compared with a plain one.
const sqlite3 = require('sqlite3');

function open() {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(':memory:', (err) => (err ? reject(err) : resolve(db)));
  });
}
function get(db, sql) {
  return new Promise((resolve, reject) => db.get(sql, (err, row) => (err ? reject(err) : resolve(row))));
}

async function main() {
  const kept = await open();
  const closed = await open();
  const one = await get(closed, 'SELECT 1 AS v');
  await new Promise((resolve, reject) => closed.close((err) => (err ? reject(err) : resolve())));
  const two = await get(kept, 'SELECT 2 AS v');
  console.log(`answers ${one.v} ${two.v}`);
  // a status of our own: under the detector it must come back unchanged (a leak only adds 23 to a 0)
  process.exit(7);
}
main().catch((e) => { console.log(`error ${e.message}`); process.exit(1); });
