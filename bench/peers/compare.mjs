// One table, same corpus, same run: civicsift (per tenant) beside the npm filters.
// Usage: node compare.mjs CIVICSIFT_BINARY PATTERNS_DIR CORPUS FORMAT(olid|sms) [TENANT...]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [bin, patterns, corpus, format, ...tenants] = process.argv.slice(2);
const columns = { olid: ['tweet', 'subtask_a', 'OFF'], sms: ['SMS', 'Label', 'spam'] }[format];
if (!columns) {
  console.error('usage: node compare.mjs CIVICSIFT PATTERNS CORPUS olid|sms [TENANT...]');
  process.exit(2);
}
const results = [];
for (const tenant of tenants.length ? tenants : ['pickering']) {
  const out = execFileSync(bin, ['eval', '--patterns', patterns, '--tenant', tenant, '--format', format, '--json', corpus]);
  results.push(JSON.parse(out.toString()));
}
const peers = execFileSync('node', [path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers.mjs'), corpus, ...columns]);
for (const line of peers.toString().trim().split('\n')) results.push(JSON.parse(line));

console.log(`${path.basename(corpus)}: ${results[0].rows} rows, ${results[0].positives} labelled ${columns[2]}\n`);
console.log('| filter | precision | recall | F1 | false-positive rate | comments/s |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of results) {
  const name = r.policy ? `civicsift (${r.policy})` : r.filter;
  console.log(`| ${name} | ${r.precision.toFixed(3)} | ${r.recall.toFixed(3)} | ${r.f1.toFixed(3)} | ${r.fpr.toFixed(4)} | ${r.comments_per_second.toLocaleString('en')} |`);
}
