-- hdistill 0.1.0: an example Lmod modulefile (docs/cluster.md, "Lmod").
-- For `make install PREFIX=/opt/hdistill/0.1.0`; edit `prefix` and the
-- dependency modules to match your site (load the modules hdistill was
-- built with: the MPI, HDF5 and OpenBLAS of its build).

help([[
hdistill 0.1.0 -- distils humor from a large language model into a small
student model on CPU clusters (Ravi et al., "Small But Funny", ACL 2024).

  hdistill --help                       subcommands and exit codes
  $HDISTILL_SHARE/docs/                 the manual
  $HDISTILL_SHARE/configs/              example configurations
  sbatch --export=ALL,CONFIG=my.json $HDISTILL_SHARE/jobs/distill.sbatch
  $HDISTILL_SHARE/jobs/submit.sh CONFIG SWEEP_FILE SWEEP_DIR
]])

whatis("Name: hdistill")
whatis("Version: 0.1.0")
whatis("Category: machine learning, MPI")
whatis("Description: feedback-driven humor distillation from an LLM into a small student (MPI, OpenBLAS, HDF5)")

local prefix = "/opt/hdistill/0.1.0"

-- the libraries hdistill was built against (names differ per site)
depends_on("openmpi", "hdf5", "openblas")

prepend_path("PATH", pathJoin(prefix, "bin"))
prepend_path("PKG_CONFIG_PATH", pathJoin(prefix, "lib/pkgconfig"))
setenv("HDISTILL_SHARE", pathJoin(prefix, "share/hdistill"))
