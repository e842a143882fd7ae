#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#elseif canImport(ucrt)
internal import ucrt
#endif

/// libm wrappers, so that StreamKit needs no Foundation.
enum Math {
    static func pow(_ x: Double, _ y: Double) -> Double {
        Foundationless.pow(x, y)
    }

    static func log(_ x: Double) -> Double {
        Foundationless.log(x)
    }

    static func exp(_ x: Double) -> Double {
        Foundationless.exp(x)
    }
}

enum Foundationless {
    static func pow(_ x: Double, _ y: Double) -> Double {
        #if canImport(Glibc)
        Glibc.pow(x, y)
        #elseif canImport(Musl)
        Musl.pow(x, y)
        #elseif canImport(Darwin)
        Darwin.pow(x, y)
        #else
        ucrt.pow(x, y)
        #endif
    }

    static func log(_ x: Double) -> Double {
        #if canImport(Glibc)
        Glibc.log(x)
        #elseif canImport(Musl)
        Musl.log(x)
        #elseif canImport(Darwin)
        Darwin.log(x)
        #else
        ucrt.log(x)
        #endif
    }

    static func exp(_ x: Double) -> Double {
        #if canImport(Glibc)
        Glibc.exp(x)
        #elseif canImport(Musl)
        Musl.exp(x)
        #elseif canImport(Darwin)
        Darwin.exp(x)
        #else
        ucrt.exp(x)
        #endif
    }
}
