#include "engine/formats/gguf_writer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <thread>

#include "engine/core/error.h"

namespace archlens {

namespace {
template <class T>
void app(std::vector<uint8_t>& b, T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
}
void app_str(std::vector<uint8_t>& b, const std::string& s) {
    app<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
}
}  // namespace

void GgufWriter::put(const std::string& key, uint32_t type, std::vector<uint8_t> payload) {
    for (auto& k : kv_)
        if (k.key == key) {
            k.type = type;
            k.payload = std::move(payload);
            return;
        }
    kv_.push_back({key, type, std::move(payload)});
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
    std::vector<uint8_t> p;
    app_str(p, v);
    put(key, 8, std::move(p));
}
void GgufWriter::set_u32(const std::string& key, uint32_t v) {
    std::vector<uint8_t> p;
    app(p, v);
    put(key, 4, std::move(p));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
    std::vector<uint8_t> p;
    app(p, v);
    put(key, 5, std::move(p));
}
void GgufWriter::set_f32(const std::string& key, float v) {
    std::vector<uint8_t> p;
    app(p, v);
    put(key, 6, std::move(p));
}
void GgufWriter::set_bool(const std::string& key, bool v) {
    std::vector<uint8_t> p;
    app<uint8_t>(p, v ? 1 : 0);
    put(key, 7, std::move(p));
}
void GgufWriter::set_strings(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> p;
    app<uint32_t>(p, 8);
    app<uint64_t>(p, v.size());
    for (auto& s : v) app_str(p, s);
    put(key, 9, std::move(p));
}
void GgufWriter::set_f32s(const std::string& key, const std::vector<float>& v) {
    std::vector<uint8_t> p;
    app<uint32_t>(p, 6);
    app<uint64_t>(p, v.size());
    for (float x : v) app(p, x);
    put(key, 9, std::move(p));
}
void GgufWriter::set_i32s(const std::string& key, const std::vector<int32_t>& v) {
    std::vector<uint8_t> p;
    app<uint32_t>(p, 5);
    app<uint64_t>(p, v.size());
    for (int32_t x : v) app(p, x);
    put(key, 9, std::move(p));
}

void GgufWriter::set_bools(const std::string& key, const std::vector<bool>& v) {
    std::vector<uint8_t> p;
    app<uint32_t>(p, 7);
    app<uint64_t>(p, v.size());
    for (bool x : v) app<uint8_t>(p, x ? 1 : 0);
    put(key, 9, std::move(p));
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, std::vector<uint8_t> data) {
    uint64_t rows = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= uint64_t(shape[i]);
    auto rb = dtype_row_bytes(type, uint64_t(shape.back()));
    if (!rb || *rb * rows != data.size())
        throw Error("GgufWriter: tensor '" + name + "' data size does not match its shape and type");
    uint64_t n = data.size();
    tensors_.push_back({name, type, shape, std::move(data), nullptr, n});
}

void GgufWriter::add_tensor_lazy(const std::string& name, DType type, const std::vector<int64_t>& shape, Generator gen) {
    uint64_t rows = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= uint64_t(shape[i]);
    auto rb = dtype_row_bytes(type, uint64_t(shape.back()));
    if (!rb) throw Error("GgufWriter: tensor '" + name + "' row length is not a multiple of the " + dtype_name(type) + " block");
    tensors_.push_back({name, type, shape, {}, std::move(gen), *rb * rows});
}

void GgufWriter::add_f32(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values) {
    std::vector<uint8_t> d(values.size() * 4);
    std::memcpy(d.data(), values.data(), d.size());
    add_tensor(name, DType::F32, shape, std::move(d));
}

void GgufWriter::write(const std::string& path) const {
    const uint64_t align = 32;
    std::vector<uint8_t> h;
    app<uint32_t>(h, 0x46554747);  // "GGUF"
    app<uint32_t>(h, 3);
    app<uint64_t>(h, tensors_.size());
    app<uint64_t>(h, kv_.size());
    for (auto& k : kv_) {
        app_str(h, k.key);
        app<uint32_t>(h, k.type);
        h.insert(h.end(), k.payload.begin(), k.payload.end());
    }
    uint64_t off = 0;
    for (auto& t : tensors_) {
        app_str(h, t.name);
        app<uint32_t>(h, uint32_t(t.shape.size()));
        for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) app<uint64_t>(h, uint64_t(*it));
        app<uint32_t>(h, uint32_t(t.type));
        app<uint64_t>(h, off);
        off += (t.nbytes + align - 1) / align * align;
    }
    std::ofstream out(path, std::ios::binary);
    if (!out) throw Error(path + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(h.data()), std::streamsize(h.size()));
    std::vector<char> pad(align, 0);
    out.write(pad.data(), std::streamsize((align - h.size() % align) % align));
    // Lazy tensors are generated ahead on worker threads (synthesizing an 8B model is mostly
    // random numbers and rounding: one thread takes minutes), written strictly in order. At most
    // `threads` generators run at once; finished ones wait in the queue within the byte budget.
    const unsigned threads = std::max(1u, threads_ ? threads_ : std::thread::hardware_concurrency());
    std::deque<std::future<std::vector<uint8_t>>> ahead;
    size_t next = 0;
    uint64_t in_flight = 0;
    auto launch = [&] {
        size_t running = 0;
        for (auto& f : ahead) running += f.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
        for (; next < tensors_.size() && running < threads; ++next) {
            const Tensor& t = tensors_[next];
            if (!t.gen) continue;  // written straight from memory
            if (!ahead.empty() && in_flight + t.nbytes > kLazyBytesInFlight) break;
            in_flight += t.nbytes;
            ++running;
            ahead.push_back(std::async(std::launch::async, [&t] {
                std::vector<uint8_t> buf;
                t.gen(buf);
                return buf;
            }));
        }
    };
    // Futures from std::async join in their destructors: an error here waits for the workers.
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const Tensor& t = tensors_[i];
        std::vector<uint8_t> generated;
        const std::vector<uint8_t>* d = &t.data;
        if (t.gen) {
            launch();  // in order: the front is always tensor i
            while (ahead.front().wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) launch();
            generated = ahead.front().get();  // rethrows a generator's error
            ahead.pop_front();
            in_flight -= t.nbytes;
            if (generated.size() != t.nbytes) throw Error(path + ": internal: tensor '" + t.name + "' generator produced the wrong size");
            d = &generated;
        }
        launch();
        out.write(reinterpret_cast<const char*>(d->data()), std::streamsize(d->size()));
        out.write(pad.data(), std::streamsize((align - d->size() % align) % align));
    }
    if (!out) throw Error(path + ": write failed");
}

}  // namespace archlens
