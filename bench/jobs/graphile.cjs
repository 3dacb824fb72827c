// bench/jobs/graphile.cjs - graphile-worker on the same database, for
// run.sh: enqueue N no-op jobs (addJobs, batches of 1000), then drain them
// with a runner. Usage: GW_DIR=<dir holding node_modules/graphile-worker>
//   node graphile.cjs URL N CONCURRENCY [LOCAL_QUEUE_SIZE]
// Prints the same two lines as bench_jobs e2e.
const path = require('path');
const { createRequire } = require('module');
const gwRequire = createRequire(path.join(process.env.GW_DIR || '.', 'package.json'));
const { run, runMigrations, makeWorkerUtils } = gwRequire('graphile-worker');

async function main() {
  const [url, nArg, concArg, lqArg] = process.argv.slice(2);
  const n = parseInt(nArg || '100000', 10);
  const concurrency = parseInt(concArg || '10', 10);
  const lq = parseInt(lqArg || '0', 10);
  const logger = { scope: () => logger, debug() {}, info() {}, warn() {}, error: console.error };
  const base = { connectionString: url, logger: undefined };
  await runMigrations(base);
  const utils = await makeWorkerUtils(base);
  await utils.withPgClient((c) => c.query('DELETE FROM graphile_worker._private_jobs'));
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < n; ) {
    const k = Math.min(1000, n - done);
    await utils.addJobs(Array.from({ length: k }, () => ({ identifier: 'noop', payload: {} })));
    done += k;
  }
  const t1 = process.hrtime.bigint();
  const sec = (a, b) => Number(b - a) / 1e9;
  console.log(`enqueue  ${n} jobs in batches of 1000: ${sec(t0, t1).toFixed(2)} s, ` +
              `${Math.round(n / sec(t0, t1))} jobs/s`);
  const preset = lq > 0 ? { worker: { localQueue: { size: lq }, completeJobBatchDelay: 0 } } : undefined;
  const t2 = process.hrtime.bigint();
  const runner = await run({
    connectionString: url, concurrency, noHandleSignals: true, pollInterval: 1000,
    taskList: { noop: async () => {} }, preset,
  });
  for (;;) {
    const r = await utils.withPgClient((c) =>
      c.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs'));
    if (r.rows[0].n === 0) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  const t3 = process.hrtime.bigint();
  await runner.stop();
  await utils.release();
  console.log(`drain    ${n} jobs, concurrency ${concurrency}` +
              (lq > 0 ? `, local queue ${lq}` : '') +
              `: ${sec(t2, t3).toFixed(2)} s, ${Math.round(n / sec(t2, t3))} jobs/s`);
}

main().catch((e) => { console.error(e); process.exit(1); });
