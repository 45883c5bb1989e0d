"""ganrt's shared core: the words every stage uses, at the bottom of the import graph.

Nothing here imports torch, onnxruntime or any other stage. train, export, infer and bench
read these modules instead of restating them:

- `errors`: the error types and their exit codes;
- `signature`: `TensorSpec`, a model input's or output's name, shape, dtype and meaning;
- `atomic`: writes that readers never see half done;
- `config`: dataclasses as the single source of command-line flags, with every setting's bounds;
- `registry`: a name -> entry table whose duplicates raise and whose unknown names list the valid ones;
- `compare`: the one comparator (max-abs, mean-abs, PSNR) and `Tolerance`;
- `targets`: the one table of backends x precisions (model file, tolerance, label);
- `artifact`: the artifact format, its manifest's writer and reader side by side;
- `locations`: default folders and the models shipped with the package.
"""
