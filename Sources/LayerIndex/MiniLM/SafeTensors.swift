import Foundation

/// A failure reading a safetensors file; every case names the file (and the tensor where there is one).
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case truncated(path: String, reason: String)
    case badHeader(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case badTensor(path: String, name: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "safetensors \(path): cannot read: \(reason)"
        case .truncated(let path, let reason): "safetensors \(path): truncated: \(reason)"
        case .badHeader(let path, let reason): "safetensors \(path): bad header: \(reason)"
        case .missingTensor(let path, let name): "safetensors \(path): no tensor named '\(name)'"
        case .badTensor(let path, let name, let reason): "safetensors \(path): tensor '\(name)': \(reason)"
        }
    }
}

/// The element types of the safetensors format.
public enum SafeTensorDType: String, Sendable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"
    case f8e4m3 = "F8_E4M3"
    case f8e5m2 = "F8_E5M2"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: 8
        case .f32, .i32, .u32: 4
        case .f16, .bf16, .i16, .u16: 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: 1
        }
    }
}

/// One entry of the header: where a tensor's bytes are, relative to the start of the data section.
public struct SafeTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorDType
    public let shape: [Int]
    /// Byte range within the data section (the bytes after the header).
    public let dataOffsets: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
/// then the raw little-endian tensor data. The file is memory-mapped; tensors are copied out as `[Float]`.
public final class SafeTensorsFile: Sendable {
    public let path: String
    public let tensors: [String: SafeTensorInfo]
    public let metadata: [String: String]
    private let bytes: Data
    private let dataStart: Int

    /// Largest header accepted (the format's own reference implementation caps it at 100 MB).
    static let maxHeaderLength = 100_000_000

    public convenience init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        try self.init(data: data, path: path)
    }

    /// Parses `data` as a safetensors file; `path` is used in error messages only.
    public init(data: Data, path: String) throws {
        self.path = path
        self.bytes = data
        guard data.count >= 8 else {
            throw SafeTensorsError.truncated(path: path, reason: "\(data.count) bytes, the header length alone is 8")
        }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(Self.maxHeaderLength) else {
            throw SafeTensorsError.badHeader(path: path, reason: "header length \(headerLength) is implausible")
        }
        guard 8 + Int(headerLength) <= data.count else {
            throw SafeTensorsError.truncated(
                path: path,
                reason: "header of \(headerLength) bytes but the file has \(data.count - 8) after the length")
        }
        dataStart = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + dataStart))
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw SafeTensorsError.badHeader(path: path, reason: "not JSON (\(error.localizedDescription))")
        }
        guard let header = object as? [String: Any] else {
            throw SafeTensorsError.badHeader(path: path, reason: "not a JSON object")
        }
        let dataSize = data.count - dataStart
        var tensors: [String: SafeTensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = v as? String ?? "\(v)" }
                }
                continue
            }
            func bad(_ reason: String) -> SafeTensorsError {
                .badTensor(path: path, name: name, reason: reason)
            }
            guard let entry = value as? [String: Any] else { throw bad("header entry is not an object") }
            guard let dtypeName = entry["dtype"] as? String else { throw bad("no dtype") }
            guard let dtype = SafeTensorDType(rawValue: dtypeName) else { throw bad("unknown dtype \(dtypeName)") }
            guard let shapeValues = entry["shape"] as? [Any],
                let shape = Self.integers(shapeValues), shape.allSatisfy({ $0 >= 0 })
            else { throw bad("shape is not a list of non-negative integers") }
            guard let offsetValues = entry["data_offsets"] as? [Any],
                let offsets = Self.integers(offsetValues), offsets.count == 2
            else { throw bad("data_offsets is not [begin, end]") }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end else { throw bad("data_offsets [\(begin), \(end)] out of order") }
            guard end <= dataSize else {
                throw SafeTensorsError.truncated(
                    path: path, reason: "tensor '\(name)' ends at byte \(end) of a \(dataSize)-byte data section")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            let (byteCount, overflow2) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !overflow2, byteCount == end - begin
            else { throw bad("shape \(shape) of \(dtypeName) needs a different size than \(end - begin) bytes") }
            tensors[name] = SafeTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            // JSONSerialization gives NSNumber; `as? Int` rejects fractions and out-of-range values.
            if let i = v as? Int { out.append(i) } else { return nil }
        }
        return out
    }

    /// Names of all tensors, sorted.
    public var names: [String] { tensors.keys.sorted() }

    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let info = tensors[name] else { throw SafeTensorsError.missingTensor(path: path, name: name) }
        return info
    }

    /// The tensor's elements as Float, in row-major order (F32 copied, F16/BF16/F64 converted);
    /// when `shape` is given the tensor must have exactly that shape.
    public func floats(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
        let info = try info(name)
        if let expected, expected != info.shape {
            throw SafeTensorsError.badTensor(
                path: path, name: name, reason: "shape \(info.shape), expected \(expected)")
        }
        let count = info.elementCount
        let start = dataStart + info.dataOffsets.lowerBound
        return try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [Float] in
            let src = UnsafeRawBufferPointer(rebasing: raw[start..<(start + info.dataOffsets.count)])
            switch info.dtype {
            case .f32:
                return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: src) }
                    initialized = count
                }
            case .f16:
                return (0..<count).map { i in
                    Self.halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)
                }
            case .bf16:
                return (0..<count).map { i in
                    let bits = src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
                    return Float(bitPattern: UInt32(bits) << 16)
                }
            case .f64:
                return (0..<count).map { i in
                    Float(Double(bitPattern: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian))
                }
            default:
                throw SafeTensorsError.badTensor(
                    path: path, name: name, reason: "dtype \(info.dtype.rawValue) is not a floating-point type")
            }
        }
    }

    /// IEEE 754 binary16 to binary32 (exact: every half value is a float value).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {  // inf / NaN
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }
            // subnormal half: mantissa * 2^-24
            let value = Float(mantissa) * Float(bitPattern: 0x3380_0000)  // 2^-24
            return sign != 0 ? -value : value
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }
}
