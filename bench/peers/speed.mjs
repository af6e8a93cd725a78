// Throughput of the npm profanity filters over a JSON-lines comment file (the same
// file civicsift scans), text only: no JSON parsing or output is charged to them.
// Usage: node speed.mjs FILE [RUNS]  -> one JSON line per filter, the best of RUNS passes
// (wall time for the rate, CPU time for the cost, each its least)
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { profanity } from '@2toad/profanity';
import { RegExpMatcher, englishDataset, englishRecommendedTransformers } from 'obscenity';

const runs = Number(process.argv[3] ?? 1);
const texts = readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const obscenity = new RegExpMatcher({ ...englishDataset.build(), ...englishRecommendedTransformers });
const filters = {
  obscenity: (t) => obscenity.hasMatch(t),
  '@2toad/profanity': (t) => profanity.exists(t),
};
for (const [name, flags] of Object.entries(filters)) {
  for (const t of texts.slice(0, 2000)) flags(t);  // warm up the JIT
  let flagged = 0;
  let seconds = Infinity;
  let cpuSeconds = Infinity;  // the process's, node's compiler and collector threads included
  for (let run = 0; run < runs; run++) {
    flagged = 0;
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    for (const t of texts) if (flags(t)) flagged++;
    const cpu = process.cpuUsage(cpuStart);
    seconds = Math.min(seconds, (performance.now() - start) / 1000);
    cpuSeconds = Math.min(cpuSeconds, (cpu.user + cpu.system) / 1e6);
  }
  console.log(JSON.stringify({ filter: name, comments: texts.length, flagged,
                               comments_per_second: Math.round(texts.length / seconds),
                               cpu_seconds_per_million: (cpuSeconds * 1e6) / texts.length }));
}
