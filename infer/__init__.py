"""ganrt inference: runners over backends, manifest-driven pre/post-processing, a dynamic batcher,
and the front ends (Python API `infer.api.load`, HTTP service, webcam/video, folder CLI)."""
