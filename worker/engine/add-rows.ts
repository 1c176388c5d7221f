import { EngineError } from '../../shared/errors.js';

type FloatArray = Float32Array | Float64Array;

/**
 * table[indices[i], :] += rows[i, :] for i in order: a lookup's row gradients summed into a
 * [tableRows, columns] view of the flat gradient. One pass in index order, so repeated indices
 * add up in the same order on every run and every thread count (deterministic). Negative
 * indices count from the end, as Gather reads them.
 */
export function addRows(table: FloatArray, tableRows: number, columns: number, indices: Int32Array | BigInt64Array, rows: FloatArray): void {
  if (table.length !== tableRows * columns || rows.length !== indices.length * columns) {
    throw new EngineError(`addRows: ${indices.length} rows of ${columns} into a [${tableRows}, ${columns}] table do not fit the arrays (${rows.length}, ${table.length})`);
  }
  for (let i = 0; i < indices.length; i++) {
    let r = Number(indices[i]!);
    if (r < 0) r += tableRows;
    if (!(r >= 0 && r < tableRows)) throw new EngineError(`addRows: row index ${indices[i]} is outside a table of ${tableRows} rows`);
    const dst = r * columns;
    const src = i * columns;
    for (let j = 0; j < columns; j++) table[dst + j]! += rows[src + j]!;
  }
}
