//! The context: sharing a caller's device, async readback, Send + Sync, one_hot.

mod common;

use common::{assert_bits_eq, each_gpu};
use wgpu_embed::kernels::{embedding_gather, one_hot};
use wgpu_embed::{cpu, DType, Embedding, Error, Gpu, GpuOptions, IndexTensor, Tensor, STATUS_OK};

#[test]
fn gpu_and_layers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Gpu>();
    check::<Tensor>();
    check::<Embedding>();
}

/// The async calls' futures are Send, so an executor may move them between
/// threads (tokio::spawn). A cache scope, which is per thread and not Send,
/// held across an await made them not; it also covered other tasks'
/// buffers on the thread while the call waited.
#[test]
fn async_calls_are_send_futures() {
    fn send<F: std::future::Future + Send>(_: F) {}
    each_gpu(|gpu| {
        let mut emb = Embedding::new(gpu, 8, 4).unwrap();
        let ids = [1u32, 2, 1];
        let on_gpu = IndexTensor::from_slice(gpu, &ids).unwrap();
        let g = Tensor::zeros(gpu, &[3, 4]).unwrap();
        send(emb.forward_gpu_async(&on_gpu));
        send(emb.backward_async(&ids, &g));
        send(emb.backward_gpu_async(&on_gpu, &g));
        send(emb.quantize_int8_async());
        send(g.to_vec_async());
        send(one_hot::one_hot_gpu_async(&on_gpu, 8));
        send(emb.backward_sgd_gpu_async(&on_gpu, &g, 0.1));
        let mut state = emb.adagrad_state().unwrap();
        send(emb.backward_adagrad_gpu_async(&on_gpu, &g, &mut state, 0.1, 1e-8));
        let mut adam = emb.adam_state().unwrap();
        let options = wgpu_embed::AdamOptions::default();
        send(emb.backward_adam_gpu_async(&on_gpu, &g, &mut adam, &options));
    });
}

#[test]
fn wraps_a_device_the_caller_owns() {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("no adapter: install lavapipe with `apt-get update && apt-get install -y mesa-vulkan-drivers`");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let gpu = Gpu::from_wgpu(device.clone(), queue.clone());
    let emb = Embedding::from_pretrained(&gpu, &[1.0, 2.0, 3.0, 4.0], 2, 2, true).unwrap();
    // Record into the caller's own encoder, submit on the caller's queue.
    let idx = wgpu_embed::IndexTensor::from_slice(&gpu, &[1, 0, 1]).unwrap();
    let out = Tensor::zeros(&gpu, &[3, 2]).unwrap();
    let status = wgpu_embed::Status::new(&gpu).unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    emb.encode_forward(&mut encoder, &idx, &out, &status)
        .unwrap();
    queue.submit([encoder.finish()]);
    assert_eq!(out.to_vec().unwrap(), [3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(status.read().unwrap(), None, "every index was in range");
}

#[test]
fn a_status_reports_the_first_bad_gpu_index_after_the_callers_submit() {
    each_gpu(|gpu| {
        let emb = Embedding::from_pretrained(gpu, &[1.0, 2.0, 3.0, 4.0], 2, 2, true).unwrap();
        let idx = wgpu_embed::IndexTensor::from_slice(gpu, &[1, 0, 7, 1, 9]).unwrap();
        let out = Tensor::zeros(gpu, &[5, 2]).unwrap();
        let status = wgpu_embed::Status::new(gpu).unwrap();
        let mut encoder = gpu.encoder("test");
        emb.encode_forward(&mut encoder, &idx, &out, &status)
            .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        assert_eq!(
            status.read().unwrap(),
            Some(2),
            "position 2 holds the first bad index (7)"
        );
        // The bad rows are zero, the good ones gathered.
        assert_eq!(
            out.to_vec().unwrap(),
            [3.0, 4.0, 1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]
        );
        // A status from another Gpu (another device) is refused before anything is recorded.
        let other = common::reopen(gpu, |_| {});
        let foreign = wgpu_embed::Status::new(&other).unwrap();
        let mut encoder = gpu.encoder("test");
        assert!(matches!(
            emb.encode_forward(&mut encoder, &idx, &out, &foreign),
            Err(wgpu_embed::Error::DifferentGpu { what: "status" })
        ));
    });
}

#[test]
fn async_readback_equals_blocking() {
    each_gpu(|gpu| {
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let t = Tensor::from_slice(gpu, &data, &[10, 100]).unwrap();
        assert_eq!(pollster::block_on(t.to_vec_async()).unwrap(), data);
        assert_eq!(t.rows_to_vec(3, 2).unwrap(), data[300..500]);
        let past = t.rows_to_vec(9, 2).unwrap_err();
        assert_eq!(
            past,
            Error::RowsOutOfRange {
                first: 9,
                count: 2,
                rows: 10
            }
        );
        assert_eq!(
            past.to_string(),
            "2 rows from row 9 run past the end of 10 rows"
        );
        assert!(matches!(
            t.rows_to_vec(usize::MAX, 2),
            Err(Error::RowsOutOfRange { .. })
        ));
        // f16 rows of odd width start mid-word, int8 rows carry their scale
        // and bias: every range reads only its words, and equals the slice
        // of the whole table.
        for dim in [1, 3, 4] {
            let values: Vec<f32> = (0..7 * dim).map(|i| i as f32 * 0.375 - 2.0).collect();
            let options = wgpu_embed::EmbeddingOptions {
                dtype: DType::F16,
                freeze: true,
                ..Default::default()
            };
            let f16 =
                Embedding::from_pretrained_with_options(gpu, &values, 7, dim, options).unwrap();
            let int8 = f16.quantize_int8().unwrap();
            for t in [&f16, &int8] {
                let all = t.weight().to_vec().unwrap();
                for first in 0..7 {
                    for count in 0..=7 - first {
                        let what = format!("{:?} dim {dim} rows {first}+{count}", t.dtype());
                        // The staging buffer holds only the rows' words
                        // (f16: one more where a row starts mid-word).
                        let words = match t.dtype() {
                            DType::F16 => (count * dim).div_ceil(2) + 1,
                            _ => count * wgpu_embed::cpu::int8_rowwise::words_per_row(dim),
                        };
                        gpu.reset_memory_peak();
                        let base = gpu.memory_live();
                        let got = t.weight().rows_to_vec(first, count).unwrap();
                        let staged = gpu.memory_peak() - base;
                        assert!(
                            staged <= (words as u64 * 4).max(4),
                            "{what}: {staged} bytes"
                        );
                        assert_bits_eq(&what, &got, &all[first * dim..(first + count) * dim]);
                    }
                }
            }
        }
        // A table made from a tensor of another shape is one row of all its
        // elements (1-D) or of the product of its shape: so is its row.
        for shape in [&[12][..], &[2, 2, 3]] {
            let t = Tensor::from_slice(gpu, &data[..12], shape).unwrap();
            let table: wgpu_embed::Table = t.into();
            assert_eq!(table.rows_to_vec(0, 1).unwrap(), data[..12], "{shape:?}");
            let halves: Vec<half::f16> =
                data[..12].iter().map(|&x| half::f16::from_f32(x)).collect();
            let h = wgpu_embed::HalfTensor::from_f16(gpu, &halves, shape).unwrap();
            let table: wgpu_embed::Table = h.into();
            assert_eq!(
                table.rows_to_vec(0, 1).unwrap(),
                data[..12],
                "f16 {shape:?}"
            );
        }
        let table = Embedding::from_pretrained(gpu, &data, 10, 100, true).unwrap();
        assert_eq!(
            table.weight().rows_to_vec(8, 3).unwrap_err(),
            Error::RowsOutOfRange {
                first: 8,
                count: 3,
                rows: 10
            }
        );
    });
}

/// A readback future dropped mid-wait (a timeout, a page that moves on)
/// leaves its staging buffer's map pending: that buffer must not come back
/// from the cache, where every later read of its size would fail on a
/// mapped buffer.
#[test]
fn a_cancelled_async_readback_does_not_break_later_ones() {
    use std::future::Future;
    use std::task::{Context, Waker};
    each_gpu(|gpu| {
        let data: Vec<f32> = (0..4096).map(|i| i as f32).collect();
        let t = Tensor::from_slice(gpu, &data, &[4096]).unwrap();
        let mut cancelled = 0;
        for _ in 0..8 {
            let mut read = std::pin::pin!(t.to_vec_async());
            let mut cx = Context::from_waker(Waker::noop());
            if read.as_mut().poll(&mut cx).is_pending() {
                cancelled += 1;
            }
            // Dropped here, mid-wait when it was pending.
        }
        assert!(cancelled > 0, "no readback was still waiting when dropped");
        for _ in 0..8 {
            assert_eq!(t.to_vec().unwrap(), data);
            assert_eq!(pollster::block_on(t.to_vec_async()).unwrap(), data);
        }
    });
}

/// Inside the library's own scope (here `Gpu::time`'s closure), a tensor
/// from the cache is cleared by a command riding in front of the next
/// submit; a `write` to it runs before that submit's command buffers, so
/// the clear must go first or it wipes the written values.
#[test]
fn a_write_to_a_cached_tensor_is_not_cleared_after_it() {
    each_gpu(|gpu| {
        let data: Vec<f32> = (0..64).map(|i| i as f32 + 0.5).collect();
        let out = Tensor::zeros(gpu, &[64]).unwrap();
        for _ in 0..3 {
            // Dropped unused: its buffer goes back to the cache for the next one.
            drop(Tensor::zeros(gpu, &[64]).unwrap());
            gpu.time(|encoder| {
                let t = Tensor::zeros(gpu, &[64])?;
                t.write(&data)?;
                encoder.copy_buffer_to_buffer(t.buffer(), 0, out.buffer(), 0, 256);
                Ok(())
            })
            .unwrap();
            assert_eq!(out.to_vec().unwrap(), data);
        }
    });
}

#[test]
fn shape_and_length_errors_for_tensors() {
    each_gpu(|gpu| {
        assert!(matches!(
            Tensor::from_slice(gpu, &[1.0; 5], &[2, 3]),
            Err(Error::LengthMismatch {
                expected: 6,
                found: 5,
                ..
            })
        ));
        let t = Tensor::zeros(gpu, &[4]).unwrap();
        assert!(matches!(
            t.write(&[1.0; 3]),
            Err(Error::LengthMismatch { .. })
        ));
        assert_eq!(t.to_vec().unwrap(), [0.0; 4]);
    });
}

#[test]
fn adapter_name_that_matches_nothing_is_an_error() {
    let options = GpuOptions {
        adapter_name: Some("no-such-adapter-xyz".into()),
        ..Default::default()
    };
    match Gpu::with_options(&options) {
        Err(Error::AdapterNotFound { wanted, available }) => {
            assert_eq!(wanted, "no-such-adapter-xyz");
            assert!(available != "none" && !available.is_empty(), "{available}");
        }
        other => panic!("expected AdapterNotFound, got {other:?}"),
    }
}

#[test]
fn one_hot_matches_twin() {
    each_gpu(|gpu| {
        for (n, classes) in [(1, 1), (5, 3), (7, 4), (100, 1000), (33, 1001), (0, 5)] {
            let idx: Vec<u32> = (0..n as u32)
                .map(|i| (i * 31 + 7) % classes as u32)
                .collect();
            let got = one_hot::one_hot(gpu, &idx, classes).unwrap();
            assert_eq!(got.shape(), [n, classes]);
            let mut want = vec![0.0; n * classes];
            let mut status = STATUS_OK;
            cpu::one_hot(&idx, classes, &mut status, &mut want);
            assert_eq!(status, STATUS_OK);
            assert_bits_eq(
                &format!("one_hot {n}×{classes}"),
                &got.to_vec().unwrap(),
                &want,
            );
            let on_gpu = IndexTensor::from_slice(gpu, &idx).unwrap();
            let got = one_hot::one_hot_gpu(&on_gpu, classes).unwrap();
            assert_bits_eq("one_hot_gpu", &got.to_vec().unwrap(), &want);
        }
        // Ids on the GPU are checked by the kernel: the first bad position
        // wins, as in the twin, and its row stays zero.
        let bad = [2u32, 9, 1, 7, 40];
        let mut status = STATUS_OK;
        let mut want = vec![0.0; bad.len() * 5];
        cpu::one_hot(&bad, 5, &mut status, &mut want);
        assert_eq!(status, 1, "the twin's first bad position");
        let on_gpu = IndexTensor::from_slice(gpu, &bad).unwrap();
        let r = one_hot::one_hot_gpu(&on_gpu, 5);
        assert!(
            matches!(
                r,
                Err(Error::IndexOutOfRange {
                    position: 1,
                    index: 9,
                    num_embeddings: 5
                })
            ),
            "{r:?}"
        );
        // The low-level call leaves the bad rows zero and the word at position 1.
        let word = wgpu_embed::Status::new(gpu).unwrap();
        let out = Tensor::from_slice(gpu, &[7.0; 25], &[5, 5]).unwrap();
        let mut enc = gpu.encoder("one_hot with bad ids");
        let args = one_hot::OneHotArgs {
            indices: on_gpu.buffer(),
            n: bad.len(),
            num_classes: 5,
            status: word.buffer(),
            out: out.buffer(),
        };
        one_hot::encode(gpu, &mut enc, &args).unwrap();
        gpu.submit_and_wait(enc).unwrap();
        assert_eq!(word.read().unwrap(), Some(1));
        assert_bits_eq("one_hot bad ids", &out.to_vec().unwrap(), &want);
        assert!(matches!(
            one_hot::one_hot(gpu, &[0, 3], 3),
            Err(Error::IndexOutOfRange {
                position: 1,
                index: 3,
                num_embeddings: 3
            })
        ));
        assert!(matches!(
            one_hot::one_hot(gpu, &[0], 0),
            Err(Error::InvalidArgument { .. })
        ));
    });
}

#[test]
fn a_wait_past_the_timeout_is_an_error_not_a_hang() {
    each_gpu(|shared| {
        let info = shared.adapter_info();
        let options = GpuOptions {
            backends: Some(info.backend.into()),
            adapter_name: Some(info.name.clone()),
            wait_timeout: Some(std::time::Duration::from_micros(1)),
            ..Default::default()
        };
        let gpu = Gpu::with_options(&options).unwrap();
        // Far more than a microsecond of work on any adapter: a 1024³
        // matmul, and a 64 MiB readback. On a busy 2-core machine the
        // test's thread can be preempted between submit and wait long
        // enough for lavapipe to finish a 512³ matmul (an Ok, which is not
        // a hang either, but not what this checks): so the work is large,
        // and the first of a few tries that times out is the one checked.
        let a = Tensor::zeros(&gpu, &[1024, 1024]).unwrap();
        let t = Tensor::zeros(&gpu, &[1 << 24]).unwrap();
        let mut tries = Vec::new();
        let attempts = if info.backend == wgpu::Backend::Gl {
            1
        } else {
            5
        };
        for _ in 0..attempts {
            let r = wgpu_embed::kernels::matmul::matmul(&a, &a, None, Default::default()).map(drop);
            let r_async = pollster::block_on(t.to_vec_async()).map(drop);
            let done = r.is_err() && r_async.is_err();
            tries.push((r, r_async));
            if done {
                break;
            }
        }
        let (r, r_async) = tries
            .iter()
            .find(|(r, _)| r.is_err())
            .cloned()
            .unwrap_or_else(|| tries[0].clone());
        let r_async = tries
            .iter()
            .map(|(_, a)| a.clone())
            .find(|a| a.is_err())
            .unwrap_or(r_async);
        if info.backend == wgpu::Backend::Gl {
            // On llvmpipe the submit runs the work itself: nothing is left
            // to time out (the README says so). A hardware GL driver may
            // finish in time or time out; either is not a hang.
            if info.device_type == wgpu::DeviceType::Cpu {
                assert!(r.is_ok() && r_async.is_ok(), "{r:?} {r_async:?}");
            } else {
                for r in [&r, &r_async] {
                    assert!(matches!(r, Ok(()) | Err(Error::Timeout { .. })), "{r:?}");
                }
            }
            return;
        }
        assert!(
            matches!(r, Err(Error::Timeout { .. })),
            "{}: {r:?}",
            info.name
        );
        // The async readback gives the wait's error too, instead of waiting forever.
        assert!(
            matches!(r_async, Err(Error::Timeout { .. })),
            "{}: {r_async:?}",
            info.name
        );
    });
}

/// `Duration::MAX` ("no limit") is past what an `Instant` holds: the waits
/// run without a deadline instead of panicking on the addition.
#[test]
fn a_wait_timeout_of_duration_max_waits_without_limit() {
    each_gpu(|shared| {
        let gpu = common::reopen(shared, |o| o.wait_timeout = Some(std::time::Duration::MAX));
        let t = Tensor::from_slice(&gpu, &[1.0, 2.0, 3.0], &[3]).unwrap();
        assert_eq!(t.to_vec().unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(
            pollster::block_on(t.to_vec_async()).unwrap(),
            [1.0, 2.0, 3.0]
        );
        let emb = Embedding::from_pretrained(&gpu, &[1.0, 2.0], 2, 1, true).unwrap();
        assert_eq!(emb.forward(&[1, 0]).unwrap().to_vec().unwrap(), [2.0, 1.0]);
    });
}

#[test]
fn rejected_resources_on_a_callers_device_are_errors_not_panics() {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("no adapter: install lavapipe with `apt-get update && apt-get install -y mesa-vulkan-drivers`");
    let open = || pollster::block_on(adapter.request_device(&Default::default())).unwrap();
    let (device, queue) = open();
    // The caller's handler: any error our calls let escape fails the test.
    device.on_uncaptured_error(std::sync::Arc::new(|e| {
        panic!("a GPU error escaped wgpu-embed's error scopes: {e}")
    }));
    let gpu = Gpu::from_wgpu(device.clone(), queue);
    let table = Tensor::zeros(&gpu, &[4, 4]).unwrap();
    let idx = wgpu_embed::IndexTensor::from_slice(&gpu, &[1, 2]).unwrap();
    let out = Tensor::zeros(&gpu, &[2, 4]).unwrap();
    let status = wgpu_embed::Status::new(&gpu).unwrap();
    // A status buffer without STORAGE usage, and an index buffer of another device.
    let unusable = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let (other, _other_queue) = open();
    let foreign = other.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 8,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let block = [wgpu_embed::RowBlock::new(table.buffer(), 0..4)];
    for (what, status, indices) in [
        ("status without STORAGE", &unusable, idx.buffer()),
        ("indices of another device", status.buffer(), &foreign),
    ] {
        let mut encoder = gpu.encoder("bad resources");
        let r = embedding_gather::encode(
            &gpu,
            &mut encoder,
            &embedding_gather::GatherArgs {
                table: &block,
                dtype: wgpu_embed::DType::F32,
                num_embeddings: 4,
                dim: 4,
                indices,
                n: 2,
                status,
                out: out.buffer(),
                threads_per_row: None,
                workgroup_size: None,
                const_dim: false,
            },
        );
        assert!(matches!(r, Err(Error::Gpu { .. })), "{what}: {r:?}");
    }
}

/// The benchmark's library entry points bound their samples as the CLI
/// does: past `MAX_REPS` is an error before any measurement, not a
/// capacity panic (a page passes its own `reps=`).
#[cfg(feature = "bench")]
#[test]
fn the_benchmark_library_refuses_reps_past_its_cap() {
    use wgpu_embed::bench;
    each_gpu(|gpu| {
        assert!(matches!(
            bench::measure_roofline(gpu, usize::MAX),
            Err(Error::InvalidArgument { name: "reps", .. })
        ));
        let mut plan = bench::Plan::for_adapter(gpu);
        plan.reps = bench::MAX_REPS + 1;
        // The first step is told before anything is measured: reaching it
        // fails the test at once rather than after hours of samples.
        let r = pollster::block_on(bench::run(gpu, &plan, &mut |p| {
            panic!("measured past the cap: {}", p.message)
        }));
        let message = r.map(drop).expect_err("a refusal");
        assert!(message.contains("past the most samples"), "{message}");
    });
}
