// SIMD kernels of the polyphase resampler.
//
// Written as `a * b + c`, never `addingProduct`: at the default x86-64 target the latter
// lowers to one `fmaf` call per lane. Checked with `objdump -d` of the release build: the
// inner loop is `movups`/`mulps`/`addps` (SSE, 4 lanes) by default and 8-wide AVX
// `vmulps`/`vaddps` with `-Xswiftc -target-cpu -Xswiftc haswell` (Swift does not contract
// `a * b + c` into FMA). Two channels share each coefficient load.

/// Computes `frames` output frames, advancing `windowStart`/`phase` as it goes.
/// Rows have `taps` coefficients, a multiple of 16.
@inline(never)
func polyphaseConvolve(
    coefficients: UnsafePointer<Float>,
    taps: Int,
    up: Int,
    down: Int,
    planes: UnsafePointer<Float>,
    planeStride: Int,
    channels: Int,
    windowStart: inout Int,
    phase: inout Int,
    frames: Int,
    output: UnsafeMutablePointer<Float>
) {
    var start = windowStart
    var currentPhase = phase
    let step = down / up
    let stepRemainder = down % up
    for frame in 0..<frames {
        let row = UnsafeRawPointer(coefficients + currentPhase * taps)
        let out = output + frame * channels
        var channel = 0
        while channel + 1 < channels {
            let first = UnsafeRawPointer(planes + channel * planeStride + start)
            let second = UnsafeRawPointer(planes + (channel + 1) * planeStride + start)
            let (a, b) = resamplerDotProductPair(row, first, second, taps: taps)
            out[channel] = a
            out[channel + 1] = b
            channel += 2
        }
        if channel < channels {
            let only = UnsafeRawPointer(planes + channel * planeStride + start)
            out[channel] = resamplerDotProduct(row, only, taps: taps)
        }
        start += step
        currentPhase += stepRemainder
        if currentPhase >= up {
            currentPhase -= up
            start += 1
        }
    }
    windowStart = start
    phase = currentPhase
}

@inline(__always)
func resamplerDotProduct(_ row: UnsafeRawPointer, _ x: UnsafeRawPointer, taps: Int) -> Float {
    var sum0 = SIMD8<Float>()
    var sum1 = SIMD8<Float>()
    var offset = 0
    let bytes = taps * MemoryLayout<Float>.stride
    while offset < bytes {
        let c0 = row.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        let c1 = row.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self)
        sum0 = c0 * x.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + sum0
        sum1 = c1 * x.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self) + sum1
        offset += 64
    }
    return resamplerHorizontalSum(sum0 + sum1)
}

@inline(__always)
func resamplerDotProductPair(
    _ row: UnsafeRawPointer,
    _ x: UnsafeRawPointer,
    _ y: UnsafeRawPointer,
    taps: Int
) -> (Float, Float) {
    var sumX0 = SIMD8<Float>()
    var sumX1 = SIMD8<Float>()
    var sumY0 = SIMD8<Float>()
    var sumY1 = SIMD8<Float>()
    var offset = 0
    let bytes = taps * MemoryLayout<Float>.stride
    while offset < bytes {
        let c0 = row.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        let c1 = row.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self)
        sumX0 = c0 * x.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + sumX0
        sumY0 = c0 * y.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) + sumY0
        sumX1 = c1 * x.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self) + sumX1
        sumY1 = c1 * y.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self) + sumY1
        offset += 64
    }
    return (resamplerHorizontalSum(sumX0 + sumX1), resamplerHorizontalSum(sumY0 + sumY1))
}

@inline(__always)
func resamplerHorizontalSum(_ v: SIMD8<Float>) -> Float {
    let four = v.lowHalf + v.highHalf
    let two = four.lowHalf + four.highHalf
    return two[0] + two[1]
}
