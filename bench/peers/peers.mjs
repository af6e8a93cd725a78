// Runs the npm profanity filters over a labelled TSV corpus and prints one JSON line
// per filter with the same figures as `civicsift eval --json`.
// Usage: node peers.mjs FILE TEXT_COLUMN LABEL_COLUMN POSITIVE_LABEL [--throughput-only]
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { profanity } from '@2toad/profanity';
import { Filter } from 'bad-words';
import leo from 'leo-profanity';
import { RegExpMatcher, englishDataset, englishRecommendedTransformers } from 'obscenity';

const [file, textColumn, labelColumn, positive] = process.argv.slice(2);
if (!positive) {
  console.error('usage: node peers.mjs FILE TEXT_COLUMN LABEL_COLUMN POSITIVE_LABEL');
  process.exit(2);
}
const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
const header = lines[0].replace(/\r$/, '').split('\t');
const ti = header.indexOf(textColumn), li = header.indexOf(labelColumn);
if (ti < 0 || li < 0) {
  console.error(`${file}: no column ${textColumn} or ${labelColumn}`);
  process.exit(2);
}
const rows = lines.slice(1).map((l) => l.replace(/\r$/, '').split('\t')).filter((c) => c.length > Math.max(ti, li));

const obscenity = new RegExpMatcher({ ...englishDataset.build(), ...englishRecommendedTransformers });
const badWords = new Filter();
const filters = {
  obscenity: (t) => obscenity.hasMatch(t),
  '@2toad/profanity': (t) => profanity.exists(t),
  'leo-profanity': (t) => leo.check(t),
  'bad-words': (t) => badWords.isProfane(t),
};

for (const [name, flags] of Object.entries(filters)) {
  let tp = 0, fp = 0, fn = 0, tn = 0;
  for (const c of rows.slice(0, 200)) flags(c[ti]);  // warm up the JIT
  const start = performance.now();
  const verdicts = rows.map((c) => flags(c[ti]));
  const seconds = (performance.now() - start) / 1000;
  rows.forEach((c, i) => {
    const pos = c[li] === positive;
    if (verdicts[i]) pos ? tp++ : fp++;
    else pos ? fn++ : tn++;
  });
  const precision = tp + fp ? tp / (tp + fp) : 0, recall = tp + fn ? tp / (tp + fn) : 0;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  console.log(JSON.stringify({
    filter: name, rows: rows.length, positives: tp + fn,
    precision: +precision.toFixed(4), recall: +recall.toFixed(4), f1: +f1.toFixed(4),
    fpr: +(fp / (fp + tn)).toFixed(4), comments_per_second: Math.round(rows.length / seconds),
  }));
}
