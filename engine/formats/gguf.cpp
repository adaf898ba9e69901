#include "engine/formats/gguf.h"

#include <cstring>

#include "engine/core/error.h"

namespace archlens {

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

double GgufValue::as_number() const {
    switch (type) {
        case GgufType::F32:
        case GgufType::F64: return f;
        default: return double(i);
    }
}

namespace {

// Bounds-checked cursor over the mapped header.
class Reader {
public:
    Reader(const MappedFile& f) : f_(f) {}
    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return f_.size() - pos_; }

    template <class T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, f_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string read_string(const char* what) {
        uint64_t n = read<uint64_t>(what);
        if (n > remaining())
            fail(f_.path(), std::string("truncated or corrupt: ") + what + " has length " +
                                std::to_string(n) + " at offset " + std::to_string(pos_ - 8) +
                                ", past the end of the file (" + std::to_string(f_.size()) + " bytes)");
        std::string s(reinterpret_cast<const char*>(f_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    void need(uint64_t n, const char* what) {
        if (n > remaining())
            fail(f_.path(), std::string("truncated: file ends while reading ") + what + " at offset " +
                                std::to_string(pos_) + " (file is " + std::to_string(f_.size()) +
                                " bytes)");
    }

private:
    const MappedFile& f_;
    uint64_t pos_ = 0;
};

uint64_t scalar_size(GgufType t) {
    switch (t) {
        case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
        case GgufType::U16: case GgufType::I16: return 2;
        case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
        case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
        default: return 0;
    }
}

bool read_scalar(Reader& r, GgufType t, int64_t& iv, double& fv, const char* what) {
    switch (t) {
        case GgufType::U8: iv = r.read<uint8_t>(what); return true;
        case GgufType::I8: iv = r.read<int8_t>(what); return true;
        case GgufType::BOOL: iv = r.read<uint8_t>(what) != 0; return true;
        case GgufType::U16: iv = r.read<uint16_t>(what); return true;
        case GgufType::I16: iv = r.read<int16_t>(what); return true;
        case GgufType::U32: iv = r.read<uint32_t>(what); return true;
        case GgufType::I32: iv = r.read<int32_t>(what); return true;
        case GgufType::U64: iv = int64_t(r.read<uint64_t>(what)); return true;
        case GgufType::I64: iv = r.read<int64_t>(what); return true;
        case GgufType::F32: fv = r.read<float>(what); return true;
        case GgufType::F64: fv = r.read<double>(what); return true;
        default: return false;
    }
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
    Reader r(*file_);
    const std::string& p = file_->path();
    if (file_->size() < 4) fail(p, "truncated: too small to be a GGUF file (" + std::to_string(file_->size()) + " bytes)");
    uint32_t magic = r.read<uint32_t>("magic");
    if (std::memcmp(&magic, "GGUF", 4) != 0) {
        char m[5] = {};
        std::memcpy(m, &magic, 4);
        for (auto& c : m)
            if (c && (c < 32 || c > 126)) c = '?';
        fail(p, std::string("not a GGUF file: wrong magic '") + m + "' (expected 'GGUF')");
    }
    version_ = r.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3)
        fail(p, "unsupported GGUF version " + std::to_string(version_) + " (supported: 2, 3)");
    uint64_t n_tensors = r.read<uint64_t>("tensor count");
    uint64_t n_kv = r.read<uint64_t>("metadata count");
    // Each kv needs >= 12 bytes and each tensor info >= 24: reject absurd counts before reserving.
    if (n_kv > r.remaining() / 12)
        fail(p, "corrupt header: metadata count " + std::to_string(n_kv) + " cannot fit in the file");
    if (n_tensors > r.remaining() / 24)
        fail(p, "corrupt header: tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = r.read_string("metadata key");
        GgufValue v;
        uint32_t t = r.read<uint32_t>("metadata type");
        if (t > 12) fail(p, "corrupt metadata: key '" + key + "' has unknown type " + std::to_string(t));
        v.type = GgufType(t);
        if (v.type == GgufType::STRING) {
            v.s = r.read_string("metadata string");
        } else if (v.type == GgufType::ARRAY) {
            uint32_t et = r.read<uint32_t>("array type");
            if (et > 12 || et == uint32_t(GgufType::ARRAY))
                fail(p, "corrupt metadata: array '" + key + "' has unsupported element type " + std::to_string(et));
            v.elem_type = GgufType(et);
            uint64_t n = r.read<uint64_t>("array length");
            uint64_t min_elem = v.elem_type == GgufType::STRING ? 8 : scalar_size(v.elem_type);
            if (n > r.remaining() / min_elem)
                fail(p, "truncated or corrupt: array '" + key + "' claims " + std::to_string(n) +
                            " elements, past the end of the file");
            if (v.elem_type == GgufType::STRING) {
                v.as.reserve(n);
                for (uint64_t i = 0; i < n; ++i) v.as.push_back(r.read_string("array string"));
            } else if (v.elem_type == GgufType::F32 || v.elem_type == GgufType::F64) {
                v.af.resize(n);
                int64_t iv;
                for (uint64_t i = 0; i < n; ++i) read_scalar(r, v.elem_type, iv, v.af[i], "array");
            } else {
                v.ai.resize(n);
                double fv;
                for (uint64_t i = 0; i < n; ++i) read_scalar(r, v.elem_type, v.ai[i], fv, "array");
            }
        } else {
            read_scalar(r, v.type, v.i, v.f, "metadata value");
        }
        kv_[key] = std::move(v);
    }

    uint64_t alignment = 32;
    if (auto a = get_int("general.alignment")) {
        if (*a <= 0 || (*a & (*a - 1)) != 0 || *a > (1 << 20))
            fail(p, "corrupt metadata: general.alignment " + std::to_string(*a) + " is not a power of two");
        alignment = uint64_t(*a);
    }

    struct Raw {
        std::string name;
        std::vector<int64_t> ne;
        uint32_t type;
        uint64_t offset;
    };
    std::vector<Raw> raws;
    raws.reserve(n_tensors);
    for (uint64_t t = 0; t < n_tensors; ++t) {
        Raw raw;
        raw.name = r.read_string("tensor name");
        uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
        if (n_dims == 0 || n_dims > 4)
            fail(p, "tensor '" + raw.name + "': absurd dimension count " + std::to_string(n_dims) + " (1 to 4 allowed)");
        for (uint32_t d = 0; d < n_dims; ++d) {
            uint64_t ne = r.read<uint64_t>("tensor shape");
            if (ne == 0 || ne > (uint64_t(1) << 40))
                fail(p, "tensor '" + raw.name + "': absurd dimension " + std::to_string(ne));
            raw.ne.push_back(int64_t(ne));
        }
        raw.type = r.read<uint32_t>("tensor type");
        raw.offset = r.read<uint64_t>("tensor offset");
        raws.push_back(std::move(raw));
    }
    uint64_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
    if (data_start > file_->size() && n_tensors > 0)
        fail(p, "truncated: tensor data section starts at " + std::to_string(data_start) +
                    ", past the end of the file (" + std::to_string(file_->size()) + " bytes)");

    for (auto& raw : raws) {
        auto info = dtype_info(raw.type);
        if (!info) fail(p, "tensor '" + raw.name + "': unknown tensor type id " + std::to_string(raw.type));
        TensorRef tr;
        tr.name = raw.name;
        tr.type = info->type;
        tr.shape.assign(raw.ne.rbegin(), raw.ne.rend());
        // Element count and byte size with overflow checks.
        uint64_t n = 1;
        for (auto d : raw.ne) {
            if (n > (uint64_t(1) << 50) / uint64_t(d))
                fail(p, "tensor '" + raw.name + "': shape " + shape_string(tr.shape) + " overflows");
            n *= uint64_t(d);
        }
        if (raw.ne[0] % info->block_size != 0)
            fail(p, "tensor '" + raw.name + "': row length " + std::to_string(raw.ne[0]) +
                        " is not a multiple of the " + info->name + " block size " + std::to_string(info->block_size));
        uint64_t bytes = n / uint64_t(info->block_size) * uint64_t(info->type_size);
        if (raw.offset % alignment != 0)
            fail(p, "tensor '" + raw.name + "': data offset " + std::to_string(raw.offset) + " is not aligned to " +
                        std::to_string(alignment));
        if (raw.offset > file_->size() || data_start + raw.offset > file_->size() ||
            bytes > file_->size() - data_start - raw.offset)
            fail(p, "tensor '" + raw.name + "': data at offset " + std::to_string(data_start + raw.offset) + " size " +
                        std::to_string(bytes) + " runs past the end of the file (" + std::to_string(file_->size()) +
                        " bytes); the file is truncated or corrupt");
        tr.file_offset = data_start + raw.offset;
        tr.data = file_->data() + tr.file_offset;
        tr.nbytes = bytes;
        tr.file = &file_->path();
        if (index_.count(tr.name)) fail(p, "duplicate tensor name '" + tr.name + "'");
        index_[tr.name] = tensors_.size();
        tensors_.push_back(std::move(tr));
    }
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
    auto v = find(key);
    if (!v || v->type != GgufType::STRING) return std::nullopt;
    return v->s;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
    auto v = find(key);
    if (!v || v->is_array() || v->type == GgufType::STRING) return std::nullopt;
    if (v->type == GgufType::F32 || v->type == GgufType::F64) return int64_t(v->f);
    return v->i;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
    auto v = find(key);
    if (!v || v->is_array() || v->type == GgufType::STRING) return std::nullopt;
    return v->as_number();
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
    auto v = find(key);
    if (!v || v->is_array() || v->type == GgufType::STRING) return std::nullopt;
    return v->i != 0;
}

const TensorRef* GgufFile::tensor(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace archlens
