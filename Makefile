# Set-up and entry points. `make demo` runs the main job, `make test` the whole test suite;
# both create .venv on first use. The venv sees the system's packages, so a torch that is already
# installed (a GPU machine's) is reused; otherwise torch==2.14.1 (a CUDA 13.0 build, so that the CUDA
# kernels compile through torch's own BuildExtension even without a GPU) and torchvision==0.29.1.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fastadv-installed
SOURCES := $(shell find csrc kernels -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh') setup.py pyproject.toml

.PHONY: venv build test demo bench lint cmake-check gpu-wheels clean

venv: $(VENV)/.deps

$(VENV)/.deps: requirements-dev.txt
	test -x $(PY) || python3 -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps torchattacks==3.5.1  # tests compare against it; its deps pull torchvision
	touch $@

$(STAMP): $(VENV)/.deps $(SOURCES)
	$(PY) -m pip install -q --no-build-isolation -e '.[studies]'  # deps: installed above
	touch $@

build: $(STAMP)

test: build
	$(PY) -m pytest -q tests

demo: build
	$(PY) -m fastadv.cli demo

bench: build
	for script in $(filter-out bench/_common.py,$(wildcard bench/*.py)); do \
		$(PY) $$script || exit 1; \
	done

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror $$(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')

# The kernels' own build, with the nvcc flags of torch's BuildExtension (needs the venv's torch).
cmake-check: venv
	cmake -S . -B cmake-build -G Ninja -DFASTADV_NVCC_FLAGS="$$($(PY) .ci/nvcc_flags.py 2>/dev/null)"
	cmake --build cmake-build
	ctest --test-dir cmake-build --output-on-failure

# The wheels .ci/gpu_check installs on the GPU machine (Python 3.12, no network there).
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl -r .ci/gpu_wheels.txt

clean:
	rm -rf build cmake-build fastadv/_C*.so *.egg-info
