# Spack recipe for hdistill (docs/cluster.md, "Spack").
#
# hdistill has no public download URL yet: build it from a checkout with
#   spack develop --path /path/to/hdistill hdistill@=0.1.0
#   spack install hdistill ^openmpi ^openblas threads=openmp ^hdf5+mpi
# The build is the project's Makefile: `make` with CC set to the MPI compiler
# wrapper (any MPI provider, no MPI pkg-config name needed) and PKGS naming the
# pkg-config files of the other dependencies as Spack installs them; then
# `make install PREFIX=<prefix>` (bin/hdistill, lib/libhdistill.a,
# lib/pkgconfig/hdistill.pc, include/hdistill/, share/hdistill/).
#
# Providers are chosen the way Spack chooses them, in the spec:
#   MPI   any provider of the `mpi` virtual (^openmpi, ^mpich, ...); the code
#         needs MPI-3 and MPI_THREAD_FUNNELED.
#   BLAS  must be OpenBLAS (^openblas): besides CBLAS's cblas_sgemm the code
#         calls OpenBLAS's own openblas_set_num_threads,
#         openblas_get_num_threads and openblas_get_config.  A threaded
#         OpenBLAS (threads=openmp or threads=pthreads) lets a rank use
#         several cores; threads=none works but uses one core per rank.
#   HDF5  the MPI build (+mpi), as on Debian (libhdf5-openmpi-dev); the code
#         uses the 1.10 API (tested with 1.10.8).
# Checked here with `python3 -m py_compile` only: the development machine has
# no Spack.  Written against Spack 1.x (build systems in spack_repo.builtin);
# the fallback import serves Spack 0.2x.

try:  # Spack >= 1.0
    from spack_repo.builtin.build_systems.makefile import MakefilePackage
except ImportError:  # Spack 0.2x exports the build systems from spack.package
    pass

from spack.package import *  # noqa: F401,F403


class Hdistill(MakefilePackage):
    """Distils humor from a large language model into a small student model
    on CPU clusters (Ravi et al., "Small But Funny", ACL 2024): C11, MPI data
    parallelism, OpenBLAS, HDF5 outputs, an OpenAI-compatible LLM client."""

    # homepage, url / git: set to where your site keeps hdistill's sources;
    # without them, build from a checkout with `spack develop` (see above).

    license("MIT")

    version("0.1.0")

    depends_on("c", type="build")
    depends_on("pkgconfig", type="build")

    depends_on("mpi")
    depends_on("blas")
    requires(
        "^[virtuals=blas] openblas",
        msg="hdistill calls OpenBLAS's own functions (openblas_set_num_threads, "
        "openblas_get_num_threads, openblas_get_config) besides cblas_sgemm",
    )
    depends_on("hdf5@1.10: +mpi")
    depends_on("curl")
    depends_on("cjson")
    depends_on("libmicrohttpd")

    # the analysis scripts (share/hdistill/analysis) need Python with h5py,
    # numpy, pandas and matplotlib at run time; the site provides them (the
    # job scripts take PYTHON, default /usr/bin/python3)

    def _make_args(self):
        spec = self.spec
        # pkg-config names of the dependencies as Spack installs them (HDF5's
        # recipe links hdf5.pc to its versioned file); MPI comes from mpicc
        pkgs = ["openblas", "hdf5", "libcurl", "libcjson", "libmicrohttpd"]
        return [
            "CC={0}".format(spec["mpi"].mpicc),
            "PKGS={0}".format(" ".join(pkgs)),
            "OPT=-O3",
        ]

    @property
    def build_targets(self):
        return ["all"] + self._make_args()

    @property
    def install_targets(self):
        return ["install", "PREFIX={0}".format(self.prefix)] + self._make_args()

    def check(self):
        # not `make test`: it needs Debian's text sources, PyTorch, npm and a
        # Slurm cluster; with --test, build the unit-test programs
        make("tests", *self._make_args())

    def installcheck(self):
        hdistill = Executable(self.prefix.bin.hdistill)
        hdistill("version")
        hdistill("check", join_path(self.prefix.share.hdistill.configs, "quickstart.json"))
