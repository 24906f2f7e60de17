# CUDA backend build (MOEINFER_CUDA=ON): the moeinfer_cuda library from src/backends/cuda/*.cu, its parity tests
# (moeinfer_cuda_tests, which skip without a GPU) and the cuda_roofline micro-benchmark. One architecture (sm_90).
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  # Hopper only: H100/H200. sm_90a (wgmma/TMA) is added per target when such kernels exist.
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
enable_language(CUDA)
# C++17 for device code: CMake 3.25 (this repo's minimum) knows no CUDA20 dialect for nvcc. The .cu files and the
# headers they include (backends/cuda/*.h) stay C++17; host code that includes them is built as C++20.
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)
if(CUDAToolkit_VERSION VERSION_LESS 12.4)
  message(WARNING "moeinfer CUDA backend is developed against nvcc 13; found ${CUDAToolkit_VERSION}")
endif()

# Kernels (*.cu, nvcc, C++17) and the host side of the backend (*.cpp, g++, C++20: the model forward that calls them).
file(GLOB MOEINFER_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backends/cuda/*.cu
     ${CMAKE_SOURCE_DIR}/src/backends/cuda/*.cpp)
add_library(moeinfer_cuda STATIC ${MOEINFER_CUDA_SOURCES})
target_include_directories(moeinfer_cuda PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(moeinfer_cuda PUBLIC moeinfer_core CUDA::cudart CUDA::cublasLt)

# The CLI of this build gets --device cuda.
target_link_libraries(moeinfer PRIVATE moeinfer_cuda)
target_compile_definitions(moeinfer PRIVATE MOEINFER_WITH_CUDA)
# The host flags above (-march=native, -Wall ...) are for g++; nvcc gets its own, passed through to the host compiler.
target_compile_options(moeinfer_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo
                                             -Xcompiler=-Wall>)
set_target_properties(moeinfer_cuda PROPERTIES CUDA_SEPARABLE_COMPILATION OFF POSITION_INDEPENDENT_CODE ON)

file(GLOB MOEINFER_CUDA_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cuda/*_test.cpp)
list(APPEND MOEINFER_CUDA_TEST_SOURCES ${CMAKE_SOURCE_DIR}/tests/exact_arithmetic.cpp)  # CPU references in fp32
add_executable(moeinfer_cuda_tests ${MOEINFER_CUDA_TEST_SOURCES})
target_include_directories(moeinfer_cuda_tests PRIVATE ${CMAKE_SOURCE_DIR}/tests)
target_compile_definitions(moeinfer_cuda_tests PRIVATE MOEINFER_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(moeinfer_cuda_tests PRIVATE moeinfer_cuda moeinfer_core GTest::gtest_main)
gtest_discover_tests(moeinfer_cuda_tests WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} DISCOVERY_TIMEOUT 60
                     TEST_PREFIX cuda.)

add_executable(cuda_roofline ${CMAKE_SOURCE_DIR}/tests/cuda/cuda_roofline.cpp)
target_link_libraries(cuda_roofline PRIVATE moeinfer_cuda moeinfer_core)
