#include "engine/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/core/error.h"

namespace archlens {

namespace fs = std::filesystem;
using json = nlohmann::json;

static bool st_dtype(const std::string& s, DType& t, int& size) {
    if (s == "F32") { t = DType::F32; size = 4; return true; }
    if (s == "F16") { t = DType::F16; size = 2; return true; }
    if (s == "BF16") { t = DType::BF16; size = 2; return true; }
    return false;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
    const std::string& p = file_->path();
    uint64_t size = file_->size();
    if (size < 8) fail(p, "truncated: too small to be a safetensors file (" + std::to_string(size) + " bytes)");
    uint64_t header_len;
    std::memcpy(&header_len, file_->data(), 8);
    if (header_len > size - 8)
        fail(p, "corrupt safetensors: header length " + std::to_string(header_len) +
                    " runs past the end of the file (" + std::to_string(size) + " bytes)");
    if (header_len > (uint64_t(100) << 20))
        fail(p, "corrupt safetensors: header length " + std::to_string(header_len) + " exceeds 100 MiB");
    json header;
    try {
        header = json::parse(file_->data() + 8, file_->data() + 8 + header_len);
    } catch (const std::exception& e) {
        fail(p, std::string("corrupt safetensors: header is not valid JSON (") + e.what() + ")");
    }
    if (!header.is_object()) fail(p, "corrupt safetensors: header is not a JSON object");
    const uint64_t data_start = 8 + header_len;
    const uint64_t data_size = size - data_start;

    struct Range { uint64_t begin, end; std::string name; };
    std::vector<Range> ranges;
    for (auto& [name, info] : header.items()) {
        if (name == "__metadata__") continue;
        if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
            fail(p, "corrupt safetensors: tensor '" + name + "' lacks dtype, shape or data_offsets");
        DType t;
        int esize;
        if (!info["dtype"].is_string()) fail(p, "corrupt safetensors: tensor '" + name + "' dtype is not a string");
        std::string ds = info["dtype"].get<std::string>();
        if (!st_dtype(ds, t, esize))
            fail(p, "tensor '" + name + "': dtype " + ds + " is not supported (F32, F16, BF16)");
        auto& sh = info["shape"];
        auto& off = info["data_offsets"];
        if (!sh.is_array() || sh.size() > 8 || !off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
            !off[1].is_number_unsigned())
            fail(p, "corrupt safetensors: tensor '" + name + "' has a malformed shape or data_offsets");
        TensorRef tr;
        tr.name = name;
        tr.type = t;
        unsigned __int128 n = 1;
        for (auto& d : sh) {
            if (!d.is_number_unsigned()) fail(p, "corrupt safetensors: tensor '" + name + "' has a negative or non-integer dimension");
            uint64_t v = d.get<uint64_t>();
            n *= v;
            if (n > (unsigned __int128)(uint64_t(1) << 50))
                fail(p, "tensor '" + name + "': shape overflows");
            tr.shape.push_back(int64_t(v));
        }
        uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
        if (e < b) fail(p, "corrupt safetensors: tensor '" + name + "' has out-of-order data_offsets [" +
                               std::to_string(b) + ", " + std::to_string(e) + ")");
        if (e > data_size)
            fail(p, "tensor '" + name + "': data_offsets end " + std::to_string(e) + " runs past the end of the file (data section is " +
                        std::to_string(data_size) + " bytes); the file is truncated or corrupt");
        uint64_t expect = uint64_t(n) * uint64_t(esize);
        if (e - b != expect)
            fail(p, "tensor '" + name + "': dtype/size mismatch: " + ds + " " + shape_string(tr.shape) + " needs " +
                        std::to_string(expect) + " bytes but data_offsets span " + std::to_string(e - b));
        tr.file_offset = data_start + b;
        tr.data = file_->data() + tr.file_offset;
        tr.nbytes = e - b;
        tr.file = &file_->path();
        tensors_.push_back(std::move(tr));
        ranges.push_back({b, e, name});
    }
    std::sort(ranges.begin(), ranges.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
    uint64_t cursor = 0;
    for (auto& rg : ranges) {
        if (rg.begin < cursor)
            fail(p, "corrupt safetensors: tensor '" + rg.name + "' overlaps the previous tensor (offset " +
                        std::to_string(rg.begin) + " < " + std::to_string(cursor) + ")");
        if (rg.begin > cursor)
            fail(p, "corrupt safetensors: gap in the data section before tensor '" + rg.name + "' (offset " +
                        std::to_string(rg.begin) + ", expected " + std::to_string(cursor) + ")");
        cursor = rg.end;
    }
}

SafetensorsModel::SafetensorsModel(const std::string& folder) {
    fs::path dir(folder);
    std::vector<std::string> shard_paths;
    fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
        json j;
        try {
            std::ifstream in(index);
            j = json::parse(in);
        } catch (const std::exception& e) {
            fail(index.string(), std::string("invalid JSON: ") + e.what());
        }
        if (!j.contains("weight_map") || !j["weight_map"].is_object())
            fail(index.string(), "missing 'weight_map'");
        std::set<std::string> files;
        for (auto& [name, file] : j["weight_map"].items()) {
            if (!file.is_string()) fail(index.string(), "weight_map entry '" + name + "' is not a file name");
            std::string f = file.get<std::string>();
            if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
                fail(index.string(), "weight_map entry '" + name + "' points outside the folder: " + f);
            files.insert(f);
        }
        for (auto& f : files) shard_paths.push_back((dir / f).string());
    } else if (fs::exists(dir / "model.safetensors")) {
        shard_paths.push_back((dir / "model.safetensors").string());
    } else {
        for (auto& e : fs::directory_iterator(dir))
            if (e.path().extension() == ".safetensors") shard_paths.push_back(e.path().string());
        std::sort(shard_paths.begin(), shard_paths.end());
        if (shard_paths.empty()) fail(folder, "no model.safetensors or model.safetensors.index.json in the folder");
    }
    for (auto& sp : shard_paths) {
        files_.push_back(std::make_unique<SafetensorsFile>(sp));
        for (auto& t : files_.back()->tensors()) {
            if (by_name_.count(t.name)) fail(sp, "tensor '" + t.name + "' appears in more than one shard");
            total_bytes_ += t.nbytes;
            by_name_[t.name] = t;
        }
    }
}

const TensorRef* SafetensorsModel::tensor(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &it->second;
}

}  // namespace archlens
