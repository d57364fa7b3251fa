//! The row pass of `segment_sum`: for one target, windows of its output
//! rows (or sparse slots) × windows of tiles, one dispatch each.

use super::*;

pub(super) fn window_params(
    mut params: Params,
    tiles: &Range<usize>,
    chunk: usize,
    presorted: bool,
) -> Params {
    params.tile_begin = tiles.start as u32;
    params.tile_end = tiles.end as u32;
    params.entry_base = if presorted {
        (tiles.start * chunk) as u32
    } else {
        0
    };
    params
}

/// One dispatch's kernel over the rows: its threads per row, the columns it
/// covers (all but for Adagrad's serial pass 1) and the extra bindings.
struct RowPass<'a> {
    spec: &'static KernelSpec,
    tpr: u32,
    columns: Range<usize>,
    extra: Vec<(u32, &'a wgpu::Buffer)>,
    /// Binds the output (Adagrad's pass 1 does not).
    writes_out: bool,
}

/// The row pass for one target: windows of its output rows (or slots) ×
/// windows of tiles, one dispatch each (Adagrad: its column ranges of
/// pass 1, then pass 2). `(tpr, blocks_per_invocation)`: the threads per
/// row and column blocks one invocation may take (see `block_cost`).
#[allow(clippy::too_many_arguments)]
pub(super) fn encode_rows(
    rec: &mut Recorder,
    args: &SegmentArgs,
    target: &SegmentOutput,
    mut params: Params,
    tile_windows: &[(Range<usize>, Span)],
    partials: &wgpu::Buffer,
    chunk: usize,
    presorted: bool,
    (tpr, blocks_per_invocation): (u32, usize),
) -> Result<()> {
    let gpu = rec.gpu();
    // f32 rows (grad_out, the moments) and the output's rows (f32 or f16).
    let row_bytes = args.dim as u64 * 4;
    let out_bytes = args.out_row_bytes();
    let (rows, out) = match target {
        SegmentOutput::Sparse { values, .. } => (0..args.num_embeddings, Span::whole(values)),
        SegmentOutput::Dense { grad: block }
        | SegmentOutput::Sgd { weight: block, .. }
        | SegmentOutput::Adagrad { weight: block, .. }
        | SegmentOutput::Adam { weight: block, .. } => {
            let r = &block.rows;
            let rows = r.start.min(args.num_embeddings)..r.end.min(args.num_embeddings);
            (rows, block.span)
        }
    };
    to_u32("table chunk elements", rows.len().saturating_mul(args.dim))?;
    // The variant for this row width and output type; the f16 ones are
    // given only for passes that write `out`.
    let half = args.half.is_some();
    let pick = |[scalar, wide, half_scalar, half_wide]: [&'static KernelSpec; 4]| match (
        vec4_path(args),
        half,
    ) {
        (false, false) => scalar,
        (true, false) => wide,
        (false, true) => half_scalar,
        (true, true) => half_wide,
    };
    let sparse = matches!(target, SegmentOutput::Sparse { .. });
    // segment_dense runs over table rows (it writes every one, zeros
    // included); the other entries over the sorted entries of a dispatch's
    // tiles, one of which handles each referenced row (see the shader's
    // `segment_at`): a step costs the batch, not the vocabulary.
    let by_entry = !matches!(target, SegmentOutput::Dense { .. });
    // Windows of what `out` holds: table rows, or the sparse slots that
    // both `values` and `rows` hold (a slot past either is not written,
    // rather than clamped onto the last one).
    let items = if let SegmentOutput::Sparse { rows, .. } = target {
        (out.size / out_bytes.max(1)).min(rows.size() / 4) as usize
    } else {
        rows.len()
    };
    let out_windows = if items == 0 {
        // Nothing to write, but a dense output of zero rows still binds.
        std::iter::once(0..0).collect()
    } else {
        binding::windows(
            gpu,
            items,
            &[row_bytes, out_bytes],
            "segment_sum output rows",
        )?
    };
    let all = 0..args.dim;
    let one = |spec, extra| {
        vec![RowPass {
            spec,
            tpr,
            columns: all.clone(),
            extra,
            writes_out: true,
        }]
    };
    // Adagrad's sum of squares so far, per sorted entry of a tile window
    // (the entry that starts the row's run), when pass 1 takes more than
    // one dispatch: scratch for the batch, not the table.
    let mut squares = None;
    // Adam's moments: sliced by the same windows as the weights.
    let mut moments = None;
    let passes = match *target {
        SegmentOutput::Adam {
            ref exp_avg,
            ref exp_avg_sq,
            adam,
            ..
        } => {
            params.lr = adam.step_size;
            params.eps = adam.eps;
            params.beta1c = adam.beta1c;
            params.beta2c = adam.beta2c;
            params.bias2 = adam.bias2;
            params.weight_decay = adam.weight_decay;
            // An f16 table was refused by `check_sizes`.
            moments = Some((exp_avg.span, exp_avg_sq.span));
            one(pick([&ADAM, &ADAM4, &ADAM, &ADAM4]), vec![])
        }
        SegmentOutput::Dense { .. } => one(pick([&DENSE, &DENSE4, &DENSE16, &DENSE16_4]), vec![]),
        SegmentOutput::Sparse { ranks, rows, .. } => {
            let spec = pick([&SPARSE, &SPARSE4, &SPARSE16, &SPARSE16_4]);
            one(spec, vec![(8, ranks), (9, rows)])
        }
        SegmentOutput::Sgd { lr, .. } => {
            params.lr = lr;
            one(pick([&SGD, &SGD4, &SGD16, &SGD16_4]), vec![])
        }
        SegmentOutput::Adagrad { state, lr, eps, .. } => {
            params.lr = lr;
            params.eps = eps;
            let width = blocks_per_invocation * block_columns(args);
            let ranges: Vec<Range<usize>> = (0..args.dim.max(1))
                .step_by(width)
                .map(|c| c..(c + width).min(args.dim))
                .collect();
            let longest = tile_windows
                .iter()
                .map(|(t, _)| (t.end * chunk).min(args.n) - (t.start * chunk).min(args.n))
                .max()
                .unwrap_or(0);
            let scratch = gpu.storage(
                "segment_sum adagrad squares",
                if ranges.len() > 1 {
                    longest as u64 * 4
                } else {
                    4
                }
                .max(4),
            )?;
            squares = Some(scratch);
            let mut passes: Vec<RowPass> = ranges
                .into_iter()
                .map(|columns| RowPass {
                    spec: pick([&ADAGRAD, &ADAGRAD4, &ADAGRAD16, &ADAGRAD16_4]),
                    tpr: 1,
                    columns,
                    extra: vec![(10, state)],
                    writes_out: false,
                })
                .collect();
            passes.push(RowPass {
                spec: pick([
                    &ADAGRAD_APPLY,
                    &ADAGRAD_APPLY4,
                    &ADAGRAD_APPLY16,
                    &ADAGRAD_APPLY16_4,
                ]),
                tpr,
                columns: all.clone(),
                extra: vec![(10, state)],
                writes_out: true,
            });
            passes
        }
    };
    for w in &out_windows {
        let (dispatch_rows, span) = if sparse {
            params.slot_begin = to_u32("sparse slot", w.start)?;
            params.slot_end = to_u32("sparse slot", w.end)?;
            (rows.clone(), out.slice(w, out_bytes))
        } else {
            let r = rows.start + w.start..rows.start + w.end;
            (r, out.slice(w, out_bytes))
        };
        params.row_begin = to_u32("chunk first row", dispatch_rows.start)?;
        params.row_end = to_u32("chunk end row", dispatch_rows.end)?;
        for (tiles, grad) in tile_windows {
            for pass in &passes {
                let mut p = window_params(params, tiles, chunk, presorted);
                p.col_begin = to_u32("embedding dim", pass.columns.start)?;
                p.col_end = to_u32("embedding dim", pass.columns.end)?;
                // The row offsets, or (by entry) the sorted keys.
                let (rows_of, items) = if by_entry {
                    let entries =
                        (tiles.end * chunk).min(args.n) - (tiles.start * chunk).min(args.n);
                    ((3, args.sorted_keys.into()), entries as u64)
                } else {
                    // `check_sizes` refused a dense target without them.
                    let offsets = args.offsets.ok_or_else(|| Error::InvalidArgument {
                        name: "offsets",
                        reason: "a dense gradient reads the row offsets".into(),
                    })?;
                    ((2, offsets.into()), dispatch_rows.len() as u64)
                };
                let mut spans: Vec<(u32, Span)> = vec![
                    (1, args.status.into()),
                    rows_of,
                    (4, args.sorted_positions.into()),
                    (5, *grad),
                    (6, partials.into()),
                ];
                if pass.writes_out {
                    spans.push((7, span));
                    if let Some((m, v)) = &moments {
                        spans.push((11, m.slice(w, row_bytes)));
                        spans.push((12, v.slice(w, row_bytes)));
                    }
                } else if let Some(squares) = &squares {
                    spans.push((14, squares.raw().into()));
                }
                spans.extend(pass.extra.iter().map(|&(b, buf)| (b, Span::whole(buf))));
                rec.launch(
                    pass.spec,
                    &[("THREADS_PER_ROW", pass.tpr as f64)],
                    &p,
                    &spans,
                    Work::Invocations(items * pass.tpr as u64),
                )?;
            }
        }
    }
    Ok(())
}
