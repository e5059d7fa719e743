/* Trial order for one participant: reproducible from (study seed, participant code), counterbalanced across and
   within participants. No DOM access here, so the tests can call AUFXPlan.buildPlan directly in the browser. */
(function (root) {
  "use strict";

  /* FNV-1a over the UTF-8 bytes: turns the seed and the participant code into a 32-bit PRNG seed. */
  function hash32(text) {
    let h = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) {
      h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  /* mulberry32: a small 32-bit PRNG; returns floats in [0, 1). */
  function mulberry32(seed) {
    let state = seed >>> 0;
    return function () {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = Math.imul(state ^ (state >>> 15), state | 1);
      t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /* Fisher-Yates on a copy. */
  function shuffled(values, rng) {
    const out = values.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /* Rows of a Williams balanced Latin square for k blocks: every block takes every position, and every block
     follows every other block, equally often over all rows (k rows for even k, 2k for odd k). */
  function latinRowCount(k) {
    return k % 2 === 0 || k === 1 ? k : 2 * k;
  }

  function latinRow(k, row) {
    const first = [0];
    for (let low = 1, high = k - 1, j = 1; j < k; j++) {
      first.push(j % 2 === 1 ? low++ : high--);
    }
    const shifted = first.map((b) => (b + (row % k)) % k);
    return row >= k ? shifted.reverse() : shifted;
  }

  /* The plan of one participant: [{trial, block, repeat, items}] in presentation order, where items are the item
     indices in screen order (pairwise: [left, right]). Blocks follow the participant's Latin-square row, reversed
     on every second repeat; trials are shuffled within blocks. Pairwise sides are balanced within a participant
     (half the pairs start with the first item on the left) and swap on every repeat. */
  function buildPlan(study, participant) {
    const code = String(participant).trim();
    const seed = hash32(study.seed + ":" + code);
    const rng = mulberry32(seed);
    const k = study.blocks.length;
    const row = seed % latinRowCount(k);
    const blockOrder = latinRow(k, row);
    const byBlock = study.blocks.map(() => []);
    study.trials.forEach((t, index) => byBlock[t.block].push(index));
    const invert = rng() < 0.5;  // with an odd number of pairs, which arrangement gets the extra trial
    const swapFirst = shuffled(study.trials.map((t, i) => (i % 2 === 1) !== invert), rng);
    const plan = [];
    for (let repeat = 0; repeat < study.repeats; repeat++) {
      const order = repeat % 2 === 0 ? blockOrder : blockOrder.slice().reverse();
      for (const block of order) {
        for (const index of shuffled(byBlock[block], rng)) {
          let items = study.trials[index].items.slice();
          if (items.length === 2 && swapFirst[index] !== (repeat % 2 === 1)) {
            items = items.reverse();
          }
          plan.push({trial: index, block: block, repeat: repeat, items: items});
        }
      }
    }
    return {participant: code, seed: seed, latinRow: row, blockOrder: blockOrder, trials: plan};
  }

  root.AUFXPlan = {hash32, mulberry32, shuffled, latinRowCount, latinRow, buildPlan};
})(window);
