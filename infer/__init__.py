"""ganrt inference: runs an exported artifact; needs no training code and, on the ONNX Runtime backends, no torch.

- `runners/`: one interface over backends (torch, ONNX Runtime CPU/CUDA/TensorRT, TensorRT);
- `prepost`: the manifest-driven Processor (user images and labels <-> model feeds and outputs);
  `codecs`: encoded bytes <-> arrays, zip and npz; `pictures`: grids and point plots;
  `samples`: a noise model's samples with their seed and labels, as a picture or an npz;
- `batcher`: the dynamic batcher; `api`: `load(artifact)` -> Generator (`sample`, `translate`);
- front ends: `cli` (options in `options`), `server/` (the HTTP service), `webcam`, `loadtest`.
"""
