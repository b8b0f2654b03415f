"""What the CUDA backend's design rests on, measured on the GPU at hand (one call of a lent device).

    python benchmarks/cuda_microbench.py --json micro.json

- the device: multiprocessors, shared memory per block (default and opt-in), per multiprocessor,
  L2, clock;
- the host cost of a numba-cuda launch: an empty kernel with 1 and with 8 array arguments,
  launched back to back (host-bound), microseconds per launch;
- whether a kernel can be given more than 48 KB of dynamic shared memory here (``opt_in_shared``
  below: numba-cuda does not opt in itself; no fastrnn kernel needs it today);
- fastrnn's SIMT product kernel (``matmul``) against PyTorch's cuBLAS (strict float32) on the
  batched path's large products at B=128, H=1024, T=100: the recurrence's per-step product
  (128 x 1024 x 1024) and the weight gradient dWhh (1024 x 1024, summed over 12,800 rows), in
  TFLOP/s, each the median of 20 timed runs after a warm-up, with CUDA events;
- the recurrence alone (forward and backward, T = 100 steps, float32) in every form that fits,
  microseconds per step, beside the plan's cost model (``step_seconds``) for the same shape:
  the model's prediction and the measurement side by side; at H = 32 a step is all barrier
  and latency.

Without a GPU, ``NUMBA_ENABLE_CUDASIM=1 python benchmarks/cuda_microbench.py --tiny`` checks
that the script runs (no timings worth reading); without numba-cuda (``pip install -e
".[cuda]"``), or without a GPU and the simulator, it says so in one line and stops.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from numba import config  # noqa: E402

from benchmarks import describe  # noqa: E402

# numba.cuda, fastrnn.backends.cuda and fastrnn.kernels.cuda: imported by ``main`` after the
# arguments are parsed (``describe.cuda_modules``), so that --help works without numba-cuda
cuda = cb = ck = None


def device_info():
    d = cuda.get_current_device()
    names = ("MULTIPROCESSOR_COUNT", "MAX_SHARED_MEMORY_PER_BLOCK",
             "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR",
             "L2_CACHE_SIZE", "CLOCK_RATE", "MAX_REGISTERS_PER_MULTIPROCESSOR",
             "COOPERATIVE_LAUNCH")
    info = {"name": d.name.decode() if isinstance(d.name, bytes) else d.name,
            "compute_capability": list(d.compute_capability)}
    for n in names:
        try:
            info[n] = getattr(d, n)
        except Exception as e:  # an attribute this numba-cuda does not know
            info[n] = f"unavailable: {e}"
    return info


def launch_cost(n):
    """Host microseconds per launch, n launches back to back, then one synchronize: an empty
    kernel with 1 and with 8 array arguments."""
    @cuda.jit
    def empty1(a):
        pass

    @cuda.jit
    def empty8(a, b, c, d, e, f, g, h):
        pass

    arrays = [cuda.device_array(16, np.float32) for _ in range(8)]
    out = {}
    for name, kernel, args in (("1 array argument", empty1, arrays[:1]),
                               ("8 array arguments", empty8, arrays)):
        kernel[1, 32](*args)
        cuda.synchronize()
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                kernel[1, 32](*args)
            cuda.synchronize()
            runs.append((time.perf_counter() - start) / n * 1e6)
        out[name] = statistics.median(runs)
    return out


def events_median(fn, repeats):
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times)


def products(B, H, T, repeats, torch):
    """TFLOP/s of fastrnn's matmul (each WORK) and of cuBLAS on the batched path's products."""
    rng = np.random.default_rng(0)
    rows = B * T
    h = rng.standard_normal((B, H)).astype(np.float32)
    W = rng.standard_normal((H, H)).astype(np.float32)
    draws = rng.standard_normal((rows, H)).astype(np.float32)
    hs = rng.standard_normal((rows, H)).astype(np.float32)
    cases = {"step product h W^T (B x H x H)": ((h, False, W, True), (B, H), 2 * B * H * H),
             "dWhh = draws^T hs (H x H, K = B*T)": ((draws, True, hs, False), (H, H),
                                                    2 * rows * H * H)}
    out = {}
    for label, ((A, ta, Bm, tb), shape, flops) in cases.items():
        dA, dB = cuda.to_device(A), cuda.to_device(Bm)
        dC = cuda.device_array(shape, np.float32)
        expect = (A.T if ta else A).astype(np.float64) @ (Bm.T if tb else Bm).astype(np.float64)
        row = {}
        for tile in sorted({ck.TILE, ck.TILE // 2}):
            kernel = cb._kernels(np.float32, tile)["matmul"]
            side = tile * ck.WORK
            grid = (-(-shape[1] // side), -(-shape[0] // side))
            seconds = events_median(lambda: kernel[grid, (tile, tile)](dA, ta, dB, tb, dC),
                                    repeats)
            err = float(np.linalg.norm(dC.copy_to_host() - expect) / np.linalg.norm(expect))
            row[f"fastrnn {tile}x{tile} threads"] = dict(tflops=flops / seconds / 1e12,
                                                         seconds=seconds, rel_error=err)
        if torch is not None:
            torch.backends.cuda.matmul.allow_tf32 = False
            tA, tB = (torch.tensor(a, device="cuda") for a in (A, Bm))
            opA, opB = (tA.T if ta else tA), (tB.T if tb else tB)
            tC = opA @ opB
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            stops = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            for s, e in zip(starts, stops):
                s.record()
                torch.matmul(opA, opB, out=tC)
                e.record()
            torch.cuda.synchronize()
            seconds = statistics.median(s.elapsed_time(e) for s, e in zip(starts, stops)) / 1e3
            row["cuBLAS fp32"] = dict(tflops=flops / seconds / 1e12, seconds=seconds)
        out[label] = row
    return out


def opt_in_shared(kernel, args, nbytes):
    """Let ``kernel`` (a numba-cuda dispatcher), compiled for ``args``, be launched with
    ``nbytes`` of dynamic shared memory: above 48 KB a block needs the driver's opt-in
    (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES; up to 227 KB on an H100/H200)."""
    from numba.cuda.cudadrv.driver import binding, driver
    compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    function = compiled._codelibrary.get_cufunc()
    attribute = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    driver.cuKernelSetAttribute(attribute, nbytes, function.handle, function.device.id)


def shared_opt_in(nbytes):
    """Whether a kernel given ``nbytes`` of dynamic shared memory runs and writes its last
    element, after ``opt_in_shared``."""
    @cuda.jit
    def touch(out, n):
        buf = cuda.shared.array(0, np.float32)
        buf[n - 1] = 7
        cuda.syncthreads()
        out[0] = buf[n - 1]

    out = cuda.device_array(1, np.float32)
    n = nbytes // 4
    try:
        opt_in_shared(touch, (out, n), nbytes)
        touch[1, 32, 0, nbytes](out, n)
        cuda.synchronize()
        return {"ok": bool(out.copy_to_host()[0] == 7)}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def recurrences(sizes, repeats):
    """{size: {form: measured and modelled microseconds per step}} for the recurrence alone."""
    rng = np.random.default_rng(0)
    out = {}
    for B, H, T in sizes:
        dt = np.float32
        Wxh = cuda.to_device((rng.standard_normal((H, 65)) * 0.1).astype(dt))
        Whh = cuda.to_device((rng.standard_normal((H, H)) / np.sqrt(H)).astype(dt))
        bh = cuda.to_device(np.zeros(H, dt))
        x = cuda.to_device(rng.integers(0, 65, (T, B)).astype(np.uint8))
        hs = cuda.to_device((rng.standard_normal((T + 1, B, H)) * 0.5).astype(dt))
        dhout = cuda.to_device(rng.standard_normal((T, B, H)).astype(dt))
        draws = cuda.device_array((T, B, H), dt)
        row = {}
        for form in ("persistent", "tiled", "step"):
            ck.RECURRENCE = form
            try:
                for direction in ("forward", "back"):
                    if direction == "forward":
                        def run():
                            cb._recurrence("forward", dt, B, H, T, lambda f, p, a, b: (
                                x, Wxh, Whh, bh, hs) + ((p.rows,) if f == "persistent" else ())
                                + (a, b))
                    else:
                        def run():
                            cb._recurrence("back", dt, B, H, T, lambda f, p, a, b: (
                                hs, dhout, Whh, draws) + ((p.rows,) if f == "persistent"
                                                           else ()) + (a, b))
                    seconds = events_median(run, repeats)
                    p = cb._recurrence_plan(direction, B, H, dt, lambda f: (
                        (x, Wxh, Whh, bh, hs) if direction == "forward" else
                        (hs, dhout, Whh, draws)) + ((1,) if f == "persistent" else ()) + (0, 1))
                    row[f"{form} {direction}"] = dict(
                        us_per_step=seconds / T * 1e6, plan=p._asdict(),
                        model_us_per_step=cb.step_seconds(p, B, H, 4, cb.H200) * 1e6)
            except ValueError as e:
                row[form] = f"does not fit: {e}"
        ck.RECURRENCE = "auto"
        row["auto"] = cb._recurrence_plan("forward", B, H, dt, lambda f: (
            x, Wxh, Whh, bh, hs) + ((1,) if f == "persistent" else ()) + (0, 1)).form
        out[f"B={B} H={H} T={T}"] = row
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--tiny", action="store_true", help="tiny sizes (the simulator)")
    args = p.parse_args(argv)
    global cuda, cb, ck
    cuda, cb, ck = describe.cuda_modules("cuda_microbench.py")
    print(describe.header(__file__, argv))
    try:
        import torch
        if not torch.cuda.is_available() or config.ENABLE_CUDASIM:
            torch = None
    except ImportError:
        torch = None
    sim = bool(config.ENABLE_CUDASIM)
    # (the simulator's CUDA events time nothing: elapsed_time is -1 there)
    result = {"device": {"name": "simulator"} if sim else device_info(), "timed": not sim}
    print(json.dumps(result["device"]), flush=True)
    result["launch_us"] = launch_cost(10 if args.tiny else 2000)
    print("launch cost (host us per launch):", json.dumps(result["launch_us"]), flush=True)
    if not sim:
        result["shared_100KB"] = shared_opt_in(100 * 1024)
        print("100 KB dynamic shared memory:", result["shared_100KB"], flush=True)
    B, H, T = (2, 8, 3) if args.tiny else (128, 1024, 100)
    result["products"] = products(B, H, T, 2 if args.tiny else 20, torch)
    for row in result["products"].values() if sim else ():
        for r in row.values():
            r["tflops"] = r["seconds"] = None  # (not timed)
    for label, row in result["products"].items():
        print(label)
        for impl, r in row.items():
            timing = "not timed (simulator)" if sim else \
                f"{r['tflops']:.2f} TFLOP/s ({r['seconds'] * 1e6:.1f} us)"
            print(f"  {impl}: {timing}"
                  + (f", rel. error {r['rel_error']:.1e}" if "rel_error" in r else ""),
                  flush=True)
    sizes = [(1, 8, 4), (3, 6, 3)] if args.tiny else [(1, 32, 100), (1, 512, 100),
                                                       (128, 1024, 100), (40, 150, 100)]
    result["recurrence"] = recurrences(sizes, 2 if args.tiny else 10)
    for row in result["recurrence"].values() if sim else ():
        for r in row.values():
            if isinstance(r, dict):
                r["us_per_step"] = None  # (not timed)
    for size, row in result["recurrence"].items():
        print(size, "auto:", row["auto"], flush=True)
        for form, r in row.items():
            if isinstance(r, dict):
                measured = "not timed (simulator)" if sim else \
                    f"{r['us_per_step']:.2f} us/step measured"
                print(f"  {form}: {measured}, {r['model_us_per_step']:.2f} modelled "
                      f"({r['plan']})", flush=True)
            elif form != "auto":
                print(f"  {form}: {r}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
