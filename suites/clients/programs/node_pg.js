// node_pg.js — node-postgres (`pg` from npm) over TCP (argv: host port user): two clients, one ended, process.exit with the other open.
const { Client } = require('pg');

async function main() {
  const [host, port, user] = process.argv.slice(2);
  const cfg = { host, port: Number(port), user, database: 'postgres', ssl: false };
  const kept = new Client(cfg);
  const ended = new Client(cfg);
  await kept.connect();
  await ended.connect();
  const r = await ended.query('SELECT 1 AS one');
  if (r.rows[0].one !== 1) throw new Error('unexpected answer');
  await ended.end();
  await kept.query('SELECT 2');
  console.log(`pid=${process.pid}`);
  process.exit(0); // `kept` is never ended
}
main().catch((e) => { console.error(e); process.exit(1); });
